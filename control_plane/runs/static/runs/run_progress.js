// Live run progress for the admin run page: an EventSource on the run's SSE endpoint, a
// progress bar, and the train/eval loss curve drawn as an inline SVG. Plain JS, no build step,
// nothing fetched from elsewhere. The panel is an element with data-run-stream, data-stream-url,
// data-state, data-max-steps, data-last-seq and data-adapter-url (the adapter page, ?name=);
// the loss history so far is JSON in #loss-history, the eval metrics (and the best eval) in #eval-history.
(function () {
  "use strict";
  var panel = document.querySelector("[data-run-stream]");
  if (!panel) return;
  var TERMINAL = ["succeeded", "failed", "cancelled"];
  var TYPES = ["state_changed", "step", "eval", "log", "exported"];
  var SVG_NS = "http://www.w3.org/2000/svg";
  var W = 640, H = 240, PAD_L = 44, PAD_R = 8, PAD_T = 8, PAD_B = 22;
  var byId = function (id) { return document.getElementById(id); };
  var maxSteps = Number(panel.dataset.maxSteps) || 0;
  var history = JSON.parse(byId("loss-history").textContent || "{}");
  var train = history.train || [];
  var evals = history.eval || [];
  // The eval metrics beside it: {"series": {name: [[step, 0..1]...]}, "best": {step, metric, value}}.
  var evalHistory = JSON.parse((byId("eval-history") || {}).textContent || "{}");
  var series = evalHistory.series || {};
  var best = evalHistory.best || null;
  var SERIES = {eval_mean_token_accuracy: "eval-acc-path", eval_exact_match: "eval-em-path", eval_chrf: "eval-chrf-path"};
  var SCALE = {eval_mean_token_accuracy: 1, eval_exact_match: 1, eval_chrf: 100};

  function setText(id, value) {
    var element = byId(id);
    if (element && value !== undefined && value !== null) element.textContent = String(value);
  }

  function fixed(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "-";
  }

  function duration(seconds) {
    if (!(seconds >= 0) || !isFinite(seconds)) return "-";
    var s = Math.round(seconds), m = Math.floor(s / 60);
    return m ? m + " min " + (s % 60) + " s" : s + " s";
  }

  function pathFor(points, x, y) {
    return points.map(function (p, i) {
      return (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1);
    }).join(" ");
  }

  function draw() {
    var all = train.concat(evals).filter(function (p) { return isFinite(p[1]); });
    byId("loss-empty").hidden = all.length > 0;
    if (!all.length) return;
    var xMax = Math.max(maxSteps, 1);
    var yMin = Infinity, yMax = -Infinity;
    all.forEach(function (p) {
      xMax = Math.max(xMax, p[0]);
      yMin = Math.min(yMin, p[1]);
      yMax = Math.max(yMax, p[1]);
    });
    if (yMax - yMin < 1e-9) { yMax += 0.5; yMin = Math.max(0, yMin - 0.5); }
    var x = function (step) { return PAD_L + (W - PAD_L - PAD_R) * step / xMax; };
    var y = function (loss) { return PAD_T + (H - PAD_T - PAD_B) * (yMax - loss) / (yMax - yMin); };
    byId("loss-train-path").setAttribute("d", pathFor(train, x, y));
    byId("loss-eval-path").setAttribute("d", pathFor(evals, x, y));
    var dots = byId("loss-eval-points");
    while (dots.firstChild) dots.removeChild(dots.firstChild);
    evals.forEach(function (p) {
      var dot = document.createElementNS(SVG_NS, "circle");
      dot.setAttribute("cx", x(p[0]).toFixed(1));
      dot.setAttribute("cy", y(p[1]).toFixed(1));
      dot.setAttribute("r", "3");
      dots.appendChild(dot);
    });
    var grid = byId("loss-grid");
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    [PAD_T, H - PAD_B].forEach(function (level) {
      var line = document.createElementNS(SVG_NS, "line");
      line.setAttribute("x1", PAD_L); line.setAttribute("x2", W - PAD_R);
      line.setAttribute("y1", level); line.setAttribute("y2", level);
      grid.appendChild(line);
    });
    if (best) {
      var bestPoint = evals.filter(function (p) { return p[0] === best.step; })[0];
      if (bestPoint) {
        var ring = document.createElementNS(SVG_NS, "circle");
        ring.setAttribute("cx", x(bestPoint[0]).toFixed(1));
        ring.setAttribute("cy", y(bestPoint[1]).toFixed(1));
        ring.setAttribute("r", "7");
        ring.setAttribute("class", "loss-best");
        dots.appendChild(ring);
      }
    }
    setText("loss-y-max", yMax.toFixed(3));
    setText("loss-y-min", yMin.toFixed(3));
    setText("loss-x-max", "step " + xMax);
    drawEvals(xMax);
  }

  function drawEvals(xMax) {
    if (!byId("eval-chart")) return;
    var names = Object.keys(SERIES).filter(function (name) { return (series[name] || []).length; });
    byId("eval-empty").hidden = names.length > 0;
    var x = function (step) { return PAD_L + (W - PAD_L - PAD_R) * step / xMax; };
    var y = function (value) { return PAD_T + (H - PAD_T - PAD_B) * (1 - Math.max(0, Math.min(1, value))); };
    Object.keys(SERIES).forEach(function (name) {
      byId(SERIES[name]).setAttribute("d", pathFor(series[name] || [], x, y));
    });
    var grid = byId("eval-grid");
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    [PAD_T, H - PAD_B].forEach(function (level) {
      var line = document.createElementNS(SVG_NS, "line");
      line.setAttribute("x1", PAD_L); line.setAttribute("x2", W - PAD_R);
      line.setAttribute("y1", level); line.setAttribute("y2", level);
      grid.appendChild(line);
    });
    setText("eval-x-max", "step " + xMax);
    if (best) {
      setText("run-best-step", best.step);
      setText("run-best-metric", best.metric);
      setText("run-best-value", fixed(best.value, 4));
      byId("run-best").hidden = false;
    }
  }

  function setProgress(step, total) {
    if (total) maxSteps = total;
    setText("run-step", step);
    setText("run-max-steps", maxSteps);
    // Fractions of a percent: a long run moves visibly from its first steps.
    var percent = maxSteps ? Math.min(100, (100 * step) / maxSteps) : 0;
    byId("run-progress-bar").style.width = percent.toFixed(2) + "%";
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
    byId("run-events").appendChild(row);
  }

  function finish(source, state) {
    source.close();
    panel.dataset.state = state;
    if (state === "succeeded") byId("run-progress-bar").style.width = "100%";
    byId("run-eta-wrap").hidden = true;
    var cancel = byId("run-cancel");
    if (cancel) cancel.hidden = true;
  }

  function onEvent(source, event) {
    var payload = event.payload;
    logEvent(event);
    if (event.type === "step") {
      setProgress(payload.step, payload.max_steps);
      setText("run-epoch", fixed(payload.epoch, 2));
      setText("run-loss", fixed(payload.loss, 4));
      setText("run-eta", duration(payload.eta_s));
      train.push([payload.step, payload.loss]);
      draw();
    } else if (event.type === "eval") {
      setText("run-eval-loss", fixed(payload.eval_loss, 4));
      evals.push([payload.step, payload.eval_loss]);
      Object.keys(SERIES).forEach(function (name) {
        if (typeof payload[name] === "number") {
          (series[name] = series[name] || []).push([payload.step, payload[name] / SCALE[name]]);
        }
      });
      if (payload.is_best) {
        var metric = payload.metric || "eval_loss";
        best = {step: payload.step, metric: metric, value: payload[metric]};
      }
      draw();
    } else if (event.type === "exported") {
      var link = byId("adapter-link");
      link.textContent = payload.adapter_name;
      link.href = panel.dataset.adapterUrl + "?name=" + encodeURIComponent(payload.adapter_name);
      byId("run-adapter").hidden = false;
    } else if (event.type === "resumed") {
      setText("run-resumed-step", String(payload.step));
      byId("run-resumed").hidden = false;
    } else if (event.type === "state_changed") {
      setText("run-state", payload.state);
      if (payload.error) {
        setText("run-error", payload.error);
        byId("run-error").hidden = false;
      }
      if (TERMINAL.indexOf(payload.state) >= 0) finish(source, payload.state);
    }
  }

  function start() {
    var url = panel.dataset.streamUrl + "?after_seq=" + encodeURIComponent(panel.dataset.lastSeq || "0");
    var source = new EventSource(url);  // reconnects by itself, sending Last-Event-ID
    TYPES.forEach(function (type) {
      source.addEventListener(type, function (message) { onEvent(source, JSON.parse(message.data)); });
    });
  }

  draw();
  if (TERMINAL.indexOf(panel.dataset.state) < 0) start();
})();
