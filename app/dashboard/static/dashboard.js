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
