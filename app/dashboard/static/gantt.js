// The Gantt page: tasks from GET /api/v1/gantt drawn with Frappe Gantt (plan bar = planned start →
// due date, its filled part = share done), then marks of our own on the same SVG: the predicted
// finish (ETA, a diamond: red when after the due date) and the order's nodes (dots coloured by
// state). Late tasks (the API's `late`) are red, at-risk ones orange. Zoom: day / week / month.
(function () {
  "use strict";
  var root = document.getElementById("gantt");
  var status = document.getElementById("gantt-status");
  var COLOURS = {grey: "#9e9e9e", yellow: "#f2b01e", green: "#2e9d57", red: "#d93025", blue: "#2f6fdd"};
  var LEVELS = {yellow: "黄色", orange: "橙色", red: "红色"};
  var SVGNS = "http://www.w3.org/2000/svg";
  var chart = null, rows = {}, mode = "Week";

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  function day(text) { var p = text.split("-"); return new Date(+p[0], +p[1] - 1, +p[2]); }

  function toBars(data) {
    var bars = [], groupKey = data.group === "supplier" ? function (t) { return "s" + t.supplier.id; }
                                                      : function (t) { return "o" + t.order.id; };
    var groups = {}, order = [];
    data.tasks.forEach(function (t) {
      var k = groupKey(t);
      if (!groups[k]) { groups[k] = []; order.push(k); }
      groups[k].push(t);
    });
    order.forEach(function (k) {
      var ts = groups[k], first = ts[0];
      var start = ts.map(function (t) { return t.planned_start; }).sort()[0];
      var end = ts.map(function (t) { return t.due_date; }).sort().slice(-1)[0];
      var late = ts.some(function (t) { return t.late; });
      var title = data.group === "supplier" ? first.supplier.name
                                            : first.order.order_no + " " + first.order.product_name;
      // Frappe Gantt draws a bar's name as HTML: names from orders, imports and suppliers are escaped here.
      bars.push({id: "g" + k, name: esc(title), start: start, end: end, progress: 0,
                 custom_class: late ? "gantt-group-late" : "gantt-group"});
      ts.forEach(function (t) {
        var label = t.task_no + " " + t.process + " · " +
          (data.group === "supplier" ? t.order.order_no : t.supplier.name);
        var cls = t.late ? "gantt-late" : t.state === "completed" ? "gantt-done"
          : t.alert_level ? "gantt-risk" : "gantt-ok";
        bars.push({id: "t" + t.id, name: esc(label), start: t.planned_start, end: t.due_date,
                   progress: Math.min(100, t.progress_pct), custom_class: cls});
        rows["t" + t.id] = t;
      });
    });
    return bars;
  }

  function popup(ctx) {
    var t = rows[ctx.task.id];
    // A group bar: its name was escaped when the bar was made.
    if (!t) { ctx.set_title(ctx.task.name); ctx.set_subtitle(""); ctx.set_details(""); return; }
    var p = t.progress || {};
    ctx.set_title(esc(t.task_no + " " + t.process));
    ctx.set_subtitle(esc(t.order.order_no + " · " + t.supplier.name + " · " + t.state_name));
    var lines = [
      "计划：" + t.planned_start + " → " + t.due_date,
      "完成：" + t.qty_done + " / " + t.planned_qty + "（" + t.progress_pct + "%）",
    ];
    if (t.progress) {
      lines.push("应完成：" + p.expected_qty + "，偏差 " + p.deviation_pct + "%");
      lines.push("预计完成：" + (p.eta_date || "停滞，无法预计") + (p.days_late ? "，延期 " + p.days_late + " 个工作日" : ""));
    }
    if (t.alert_level) lines.push("预警：" + LEVELS[t.alert_level]);
    t.nodes.forEach(function (n) { lines.push(esc(n.name) + "：计划 " + n.planned_date); });
    ctx.set_details(lines.map(esc).join("<br>") +
      '<br><a href="' + root.dataset.orderUrl.replace(/0$/, t.order.id) + '">打开订单</a>');
  }

  function mark(svg, shape, attrs, title) {
    var el = document.createElementNS(SVGNS, shape);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (title) {
      var tt = document.createElementNS(SVGNS, "title");
      tt.textContent = title;
      el.appendChild(tt);
    }
    svg.appendChild(el);
    return el;
  }

  // Our marks, positioned from each bar's own geometry: the bar spans [_start, _end) of its task.
  function drawMarks() {
    if (!chart) return;
    var svg = chart.$svg, old = svg.querySelector("g.dash-marks");
    if (old) old.remove();
    var layer = document.createElementNS(SVGNS, "g");
    layer.setAttribute("class", "dash-marks");
    svg.appendChild(layer);
    chart.tasks.forEach(function (task) {
      var t = rows[task.id];
      var bar = svg.querySelector('.bar-wrapper[data-id="' + task.id + '"] .bar');
      if (!t || !bar) return;
      var x = +bar.getAttribute("x"), w = +bar.getAttribute("width");
      var y = +bar.getAttribute("y"), h = +bar.getAttribute("height");
      var perMs = w / (task._end - task._start);
      var at = function (d) { return x + (day(d) - task._start) * perMs; };
      var eta = t.progress && t.progress.eta_date;
      if (eta && t.state !== "completed") {
        var ex = at(eta) + perMs * 12 * 3600 * 1000, ey = y + h / 2, r = Math.min(7, h / 2);
        mark(layer, "path", {d: "M" + ex + " " + (ey - r) + " L" + (ex + r) + " " + ey + " L" + ex + " " + (ey + r) +
                            " L" + (ex - r) + " " + ey + " Z",
                             "class": "eta-mark" + (eta > t.due_date ? " eta-late" : "")},
             "预计完成 " + eta);
      }
      t.nodes.forEach(function (n) {
        if (n.planned_date < task.start || n.planned_date > t.due_date) return;
        mark(layer, "circle", {cx: at(n.planned_date) + perMs * 12 * 3600 * 1000, cy: y + h + 4, r: 3.5,
                               fill: COLOURS[n.colour] || COLOURS.grey, "class": "node-mark"},
             n.name + "（计划 " + n.planned_date + "）");
      });
    });
  }

  // Open the chart a few days before the earliest bar (the library pads a month or more before it).
  function firstStart(bars) {
    var first = day(bars.map(function (b) { return b.start; }).sort()[0]);
    first.setDate(first.getDate() - 3);
    return first;
  }

  function draw(data) {
    rows = {};
    root.innerHTML = "";
    var bars = toBars(data);
    if (!bars.length) { status.textContent = "没有符合条件的任务"; return; }
    status.textContent = data.tasks.length + " 个任务" + (data.truncated ? "（只显示前 300 个，请按订单或供应商筛选）" : "") +
      "，今天 " + data.today;
    chart = new Gantt(root, bars, {
      view_mode: mode, language: "zh", readonly: true, today_button: false, infinite_padding: false,
      bar_height: 22, padding: 16, popup_on: "click", popup: popup, scroll_to: firstStart(bars),
      on_view_change: function () { window.setTimeout(drawMarks, 0); },
    });
    window.setTimeout(drawMarks, 0);
    root.dataset.ready = "1";
  }

  function load() {
    var src = root.dataset.src + (document.getElementById("finished").checked ? "&finished=true" : "");
    root.dataset.ready = "";
    fetch(src, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (res) {
        if (!res.ok) throw new Error(res.status === 401 ? "登录已过期，请刷新页面重新登录" : "加载失败（" + res.status + "）");
        return res.json();
      })
      .then(draw)
      .catch(function (err) { status.textContent = err.message; });
  }

  document.querySelectorAll("#zoom button").forEach(function (btn) {
    btn.addEventListener("click", function () {
      mode = btn.dataset.mode;
      document.querySelectorAll("#zoom button").forEach(function (b) { b.classList.toggle("on", b === btn); });
      if (chart) chart.change_view_mode(mode, true);
    });
  });
  document.getElementById("finished").addEventListener("change", load);
  load();
})();
