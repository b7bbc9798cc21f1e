// The enterprise page's charts (ECharts, served locally): daily electricity and water with the rules'
// expected level and band (shaded) and the alert windows shaded; the risk score over time.
(function () {
  var el = document.getElementById("chart");
  var source = document.getElementById("chart-data");
  if (!el || !source || typeof echarts === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var days = data.days;
  var pick = function (series) { return days.map(function (d) { return d in series ? series[d] : null; }); };
  var shade = data.windows.map(function (w) { return [{ xAxis: w[0] }, { xAxis: w[1] }]; });
  var colours = { electricity: "#1f5fa8", water: "#2a8a57" };
  var series = [];
  var legend = [];
  var hidden = {};
  ["electricity", "water"].forEach(function (utility, axis) {
    var name = el.dataset[utility];
    var band = data.band[utility] || {};
    var low = days.map(function (d) { return d in band ? band[d][0] : null; });
    var width = days.map(function (d) { return d in band ? band[d][1] - band[d][0] : null; });
    var bandName = name + " " + el.dataset.band;
    // The band: its lower edge (invisible), then its width stacked on it as a shaded area.
    series.push({ name: bandName, type: "line", stack: "band-" + utility, yAxisIndex: axis, data: low,
                  showSymbol: false, lineStyle: { opacity: 0 }, tooltip: { show: false } });
    series.push({ name: bandName, type: "line", stack: "band-" + utility, yAxisIndex: axis, data: width,
                  showSymbol: false, lineStyle: { opacity: 0 }, areaStyle: { color: colours[utility], opacity: 0.12 },
                  tooltip: { show: false } });
    series.push({ name: name + " " + el.dataset.expected, type: "line", yAxisIndex: axis, showSymbol: false,
                  data: pick(data.expected[utility] || {}), lineStyle: { type: "dashed", width: 1 },
                  itemStyle: { color: colours[utility] } });
    var amounts = { name: name, type: "line", yAxisIndex: axis, showSymbol: false, data: pick(data[utility] || {}),
                    itemStyle: { color: colours[utility] } };
    if (axis === 0) { amounts.markArea = { itemStyle: { color: "rgba(176, 0, 32, 0.12)" }, data: shade }; }
    series.push(amounts);
    legend.push(name, name + " " + el.dataset.expected, bandName);
    if (axis === 1) { hidden[bandName] = false; }  // one band at a time reads best: water's on demand
  });
  var chart = echarts.init(el);
  chart.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    legend: { data: legend, selected: hidden, top: 0, type: "scroll" },
    grid: { left: 70, right: 70, top: 50, bottom: 60 },
    dataZoom: [{ type: "inside" }, { type: "slider" }],
    xAxis: { type: "category", data: days },
    yAxis: [{ type: "value", name: "kWh" }, { type: "value", name: "m³" }],
    series: series
  });
  window.addEventListener("resize", function () { chart.resize(); });

  var riskEl = document.getElementById("risk-chart");
  if (!riskEl) { return; }
  var risk = echarts.init(riskEl);
  risk.setOption({
    animation: false,
    tooltip: { trigger: "axis" },
    grid: { left: 70, right: 70, top: 20, bottom: 40 },
    xAxis: { type: "time", min: days.length ? days[0] : null, max: days.length ? days[days.length - 1] : null },
    yAxis: { type: "value", min: 0, max: 100 },
    series: [{ name: riskEl.dataset.risk, type: "line", step: "end", showSymbol: true, symbolSize: 4,
               data: data.risk, itemStyle: { color: "#b00020" },
               markLine: { silent: true, symbol: "none", data: [{ yAxis: 60 }], lineStyle: { type: "dotted" } } }]
  });
  window.addEventListener("resize", function () { risk.resize(); });
})();
