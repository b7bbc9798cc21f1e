// The enterprise page's chart: daily electricity and water, alert windows shaded (ECharts, served locally).
(function () {
  var el = document.getElementById("chart");
  var source = document.getElementById("chart-data");
  if (!el || !source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var days = data.days;
  var pick = function (series) { return days.map(function (d) { return d in series ? series[d] : null; }); };
  var shade = data.windows.map(function (w) { return [{ xAxis: w[0] }, { xAxis: w[1] }]; });
  var chart = echarts.init(el);
  chart.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { data: [el.dataset.electricity, el.dataset.water] },
    grid: { left: 70, right: 70, top: 40, bottom: 60 },
    dataZoom: [{ type: "inside" }, { type: "slider" }],
    xAxis: { type: "category", data: days },
    yAxis: [{ type: "value", name: "kWh" }, { type: "value", name: "m³" }],
    series: [
      { name: el.dataset.electricity, type: "line", showSymbol: false, data: pick(data.electricity),
        markArea: { itemStyle: { color: "rgba(176, 0, 32, 0.12)" }, data: shade } },
      { name: el.dataset.water, type: "line", showSymbol: false, yAxisIndex: 1, data: pick(data.water) }
    ]
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
