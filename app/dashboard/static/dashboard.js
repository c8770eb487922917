// A filter form leaves out the fields left empty (an empty value is not a filter, and the
// server refuses what is not a valid one).
document.querySelectorAll("form.filters").forEach(function (form) {
  form.addEventListener("submit", function () {
    form.querySelectorAll("input, select").forEach(function (el) { if (!el.value) el.disabled = true; });
  });
});

// Click a photo thumbnail to see it large; click anywhere (or Esc) to close.
(function () {
  "use strict";
  var box = document.getElementById("lightbox");
  if (!box) return;
  var img = box.querySelector("img");
  document.addEventListener("click", function (e) {
    var thumb = e.target.closest && e.target.closest("img.thumb");
    if (thumb) { img.src = thumb.dataset.full || thumb.src; box.hidden = false; return; }
    if (!box.hidden && box.contains(e.target)) { box.hidden = true; img.removeAttribute("src"); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { box.hidden = true; img.removeAttribute("src"); }
  });
})();
