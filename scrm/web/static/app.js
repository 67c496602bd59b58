/* scrm dashboard: draws the charts of a page (Apache ECharts) from data the page carries or fetches.
   No inline scripts (the Content-Security-Policy forbids them): a chart is an element with
   data-chart="overview|funnel|map"; its data is the JSON of #chart-data or of its data-src URL. */
(function () {
  "use strict";

  function pageData() {
    var node = document.getElementById("chart-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function labels(el) {
    return el.dataset.labels ? JSON.parse(el.dataset.labels) : {};
  }

  var draw = {
    overview: function (chart, el, data) {
      var names = labels(el);
      chart.setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 50, right: 50, top: 40, bottom: 30 },
        xAxis: { type: "category", data: data.days },
        yAxis: [{ type: "value", name: "" }, { type: "value", name: "" }],
        series: [
          { name: names.new, type: "bar", stack: "f", data: data.series.new, itemStyle: { color: "#15803d" } },
          { name: names.lost, type: "bar", stack: "f", data: data.series.lost.map(function (v) { return -v; }), itemStyle: { color: "#b42318" } },
          { name: names.interactions, type: "line", yAxisIndex: 1, smooth: true, data: data.series.interactions, itemStyle: { color: "#2563eb" } }
        ]
      });
    },
    funnel: function (chart, el, data) {
      chart.setOption({
        animation: false,
        tooltip: { trigger: "item", formatter: "{b}: {c}" },
        series: [{
          type: "funnel", left: "10%", width: "80%", sort: "none", minSize: "8%",
          label: { show: true, position: "inside", formatter: "{b}: {c}" },
          data: data.stages.map(function (s) { return { name: s.label, value: s.customers }; })
        }]
      });
    },
    map: function (chart, el, data) {
      var names = labels(el);
      chart.setOption({
        tooltip: {
          formatter: function (p) {
            if (p.dataType !== "node") { return ""; }
            var d = p.data, role = d.leader ? names.leader : (d.bridge ? names.bridge : "");
            var text = document.createElement("div");
            text.textContent = d.title + (role ? " · " + role : "") + " · " + names.community + " " + d.community;
            return text.innerHTML;
          }
        },
        legend: [{ type: "scroll", top: 0, data: data.categories.map(function (c) { return c.name; }) }],
        series: [{
          type: "graph", layout: "force", roam: true, draggable: true, top: 60,
          categories: data.categories,
          force: { repulsion: 50, edgeLength: [20, 70], gravity: 0.15 },
          emphasis: { focus: "adjacency" },
          lineStyle: { color: "source", opacity: 0.35, curveness: 0.1 },
          label: { show: false },
          data: data.nodes.map(function (n) {
            var node = {
              id: String(n.id), name: String(n.id), title: n.name || ("#" + n.id), category: n.category,
              community: n.community, leader: n.leader, bridge: n.bridge, symbolSize: n.size,
              symbol: n.bridge && !n.leader ? "diamond" : "circle"
            };
            if (n.leader) { node.itemStyle = { borderColor: "#111", borderWidth: 2 }; node.label = { show: true, formatter: node.title, position: "right", fontSize: 11 }; }
            return node;
          }),
          links: data.links.map(function (l) { return { source: String(l.source), target: String(l.target) }; })
        }]
      });
      chart.on("click", function (p) {
        if (p.dataType === "node") { window.location.href = "/customers/" + encodeURIComponent(p.data.id); }
      });
      el.dataset.nodes = String(data.nodes.length);
    }
  };

  function init(root) {
    if (typeof echarts === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) { return; }
      el.dataset.drawn = "1";
      var kind = el.dataset.chart, chart = echarts.init(el);
      window.addEventListener("resize", function () { chart.resize(); });
      function done(data) { draw[kind](chart, el, data); el.dataset.ready = "1"; }
      if (el.dataset.src) {
        fetch(el.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
          .then(done)
          .catch(function () { el.dataset.ready = "error"; });
      } else {
        done(pageData());
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (e) { init(e.target); });
})();
