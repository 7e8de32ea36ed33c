// Live job progress for admin pages: an EventSource on the job's SSE endpoint.
// Plain JS, no build step. The panel is an element with data-job-stream, data-stream-url,
// data-state, data-target and data-last-seq; ids inside it are updated as events arrive.
(function () {
  "use strict";
  var panel = document.querySelector("[data-job-stream]");
  if (!panel) return;
  var TERMINAL = ["succeeded", "failed", "cancelled"];
  var TYPES = ["state_changed", "progress", "row_rejected", "dataset_written", "judge_failed"];
  var byId = function (id) { return document.getElementById(id); };
  var target = Number(panel.dataset.target) || 0;

  function setText(id, value) {
    var element = byId(id);
    if (element && value !== undefined && value !== null) element.textContent = String(value);
  }

  function setCounts(payload) {
    if (payload.target_rows) target = payload.target_rows;
    setText("job-kept", payload.kept);
    setText("job-dropped", payload.dropped);
    setText("job-failed", payload.failed);
    setText("job-target", target);
    var percent = target ? Math.min(100, Math.round((100 * payload.kept) / target)) : 0;
    byId("job-progress-bar").style.width = percent + "%";
  }

  function setReport(report) {
    if (!report) return;
    setText("report-clusters", report.near_dup_clusters);
    setText("report-judged", report.judged);
    setText("report-judge-failures", report.judge_failures);
  }

  function logEvent(event) {
    var row = document.createElement("tr");
    row.className = "live";
    [event.seq, event.type, event.time.slice(11, 19), JSON.stringify(event.payload)].forEach(function (value, i) {
      var cell = document.createElement("td");
      if (i === 3) {
        var code = document.createElement("code");
        code.textContent = value;
        cell.appendChild(code);
      } else {
        cell.textContent = value;
      }
      row.appendChild(cell);
    });
    byId("job-events").appendChild(row);
  }

  function finish(source) {
    source.close();
    panel.dataset.state = byId("job-state").textContent;
    byId("job-finished").hidden = false;
    var cancel = byId("job-cancel");
    if (cancel) cancel.hidden = true;
  }

  function start() {
    var url = panel.dataset.streamUrl + "?after_seq=" + encodeURIComponent(panel.dataset.lastSeq || "0");
    var source = new EventSource(url);  // reconnects by itself, sending Last-Event-ID
    var onEvent = function (message) {
      var event = JSON.parse(message.data);
      logEvent(event);
      if (event.type === "progress" || event.type === "dataset_written") {
        setCounts(event.payload);
        setReport(event.payload.report);
      }
      if (event.type === "state_changed") {
        setText("job-state", event.payload.state);
        if (event.payload.error) {
          setText("job-error", event.payload.error);
          byId("job-error").hidden = false;
        }
        if (TERMINAL.indexOf(event.payload.state) >= 0) finish(source);
      }
    };
    TYPES.forEach(function (type) { source.addEventListener(type, onEvent); });
    source.onerror = function () {
      // CLOSED: the server answered 204 (finished) or an error; otherwise EventSource retries.
      if (source.readyState === EventSource.CLOSED) byId("job-finished").hidden = false;
    };
  }

  if (TERMINAL.indexOf(panel.dataset.state) < 0) start();
})();
