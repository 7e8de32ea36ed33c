// The Compare page's batch form, streamed: POST to the batch API with
// Accept: text/event-stream and add each row to the table as it arrives, then the summary.
// Plain JS, no build step, nothing fetched from elsewhere. Without JS the form posts to the
// page, which answers once the whole batch is done.
(function () {
  "use strict";
  var form = document.getElementById("batch-form");
  if (!form || !window.fetch || !window.TextDecoder) return;
  var byId = function (id) { return document.getElementById(id); };
  var PREFIX = "batch-";

  function value(name) {
    var field = form.elements[PREFIX + name];
    return field ? field.value.trim() : "";
  }

  function body() {
    var data = { adapter: value("adapter"), limit: Number(value("limit") || 20), sampling: {} };
    if (value("dataset")) data.dataset = value("dataset");
    if (value("target")) data.target = value("target");
    if (value("token")) data.token = form.elements[PREFIX + "token"].value;
    if (value("temperature") !== "") data.sampling.temperature = Number(value("temperature"));
    if (value("max_tokens") !== "") data.sampling.max_tokens = Number(value("max_tokens"));
    if (value("judge_url")) {
      data.judge = { base_url: value("judge_url"), model: value("judge_model"), mode: value("judge_mode") || "pairwise" };
      if (value("judge_token")) data.judge.token = form.elements[PREFIX + "judge_token"].value;
      if (value("judge_rubric")) data.judge.rubric = value("judge_rubric");
    }
    return data;
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    var pre = document.createElement("pre");
    pre.textContent = text;
    td.appendChild(pre);
    row.appendChild(td);
    return td;
  }

  function meta(td, text) {
    var span = document.createElement("span");
    span.className = "compare-meta";
    span.textContent = text;
    td.appendChild(span);
  }

  function addRow(data) {
    var tr = document.createElement("tr");
    tr.className = "live";
    var index = document.createElement("td");
    index.textContent = String(data.index);
    tr.appendChild(index);
    var prompt = cell(tr, data.prompt);
    if (data.error) meta(prompt, data.error);
    cell(tr, data.reference);
    meta(cell(tr, data.base.text, data.base_exact ? "exact" : ""),
      "chrF " + data.base_chrf.toFixed(1) + " \u00b7 " + data.base.finish_reason);
    meta(cell(tr, data.adapter.text, data.adapter_exact ? "exact" : ""),
      "chrF " + data.adapter_chrf.toFixed(1) + " \u00b7 " + data.adapter.finish_reason);
    judgeCell(tr, data.judge);
    byId("batch-rows").tBodies[0].appendChild(tr);
    byId("batch-status").textContent = (byId("batch-rows").tBodies[0].rows.length) + " rows so far";
  }

  function judgeCell(tr, judge) {
    var td = document.createElement("td");
    td.className = "judge";
    tr.appendChild(td);
    if (!judge) return;
    if (judge.outcome) {
      var outcome = document.createElement("strong");
      outcome.className = "judge-outcome";
      outcome.setAttribute("data-outcome", judge.outcome);
      outcome.textContent = judge.outcome;
      td.appendChild(outcome);
      if (judge.inconsistent) meta(td, " (the orders disagreed)");
    }
    if (judge.reason && !judge.verdicts.length) {  // else each verdict says why itself
      meta(td, judge.reason);
      td.lastChild.className += " judge-reason";
    }
    var list = document.createElement("ul");
    list.className = "judge-verdicts";
    judge.verdicts.forEach(function (v) {
      var li = document.createElement("li");
      li.textContent = v.first + " first: " + (v.winner ? v.winner + " \u2014 " + v.reason : "no verdict (" + v.error + ")");
      list.appendChild(li);
    });
    td.appendChild(list);
    if (judge.base_score) {
      meta(td, "score base " + (judge.base_score.score || "none") + ", adapter " +
        ((judge.adapter_score && judge.adapter_score.score) || "none"));
    }
  }

  function percent(x) { return Math.round(x * 100) + "%"; }

  function showJudge(j) {
    var box = byId("judge-summary");
    if (!j) { box.hidden = true; return; }
    box.hidden = false;
    byId("judge-model").textContent = j.model;
    byId("judge-mode").textContent = j.mode;
    byId("judge-error").textContent = j.error;
    byId("judge-error").hidden = !j.error;
    var row = byId("judge-summary-row");
    row.textContent = "";
    [j.wins + " (" + percent(j.win_rate) + ")", percent(j.win_rate_low).replace("%", "") + "\u2013" + percent(j.win_rate_high),
      j.ties + " (" + percent(j.tie_rate) + ")", j.losses + " (" + percent(j.loss_rate) + ")", String(j.no_verdict),
      String(j.inconsistent),
      (j.base_scored || j.adapter_scored) ? j.base_score_mean.toFixed(2) + " / " + j.adapter_score_mean.toFixed(2) : "\u2013"
    ].forEach(function (text) {
      var td = document.createElement("td");
      td.textContent = text;
      row.appendChild(td);
    });
  }

  function showSummary(summary) {
    showJudge(summary.judge);
    var tbody = byId("batch-summary").tBodies[0];
    tbody.textContent = "";
    [["base", "Base"], ["adapter", "Adapter"]].forEach(function (side) {
      var s = summary[side[0]], tr = document.createElement("tr");
      tr.setAttribute("data-side", side[0]);
      [side[1], Math.round(s.exact_match_rate * 100) + "%", s.chrf.toFixed(1), Math.round(s.stop_rate * 100) + "%",
        s.latency_p50_ms.toFixed(1) + " ms", s.latency_p95_ms.toFixed(1) + " ms"].forEach(function (text, i) {
        var el = document.createElement(i ? "td" : "th");
        el.textContent = text;
        tr.appendChild(el);
      });
      tbody.appendChild(tr);
    });
    byId("batch-status").textContent = "done: " + summary.rows + " rows" +
      (summary.failed_rows ? ", " + summary.failed_rows + " failed" : "");
  }

  function fail(message) {
    var note = byId("batch-error");
    note.textContent = message;
    note.hidden = false;
    byId("batch-status").textContent = "failed";
  }

  function handle(event, data) {
    if (event === "row") addRow(data);
    else if (event === "summary") showSummary(data);
    else if (event === "error") fail(data.message);
  }

  function parse(buffer) {
    // Complete messages end with a blank line; the rest waits for more bytes.
    var parts = buffer.split("\n\n");
    var rest = parts.pop();
    parts.forEach(function (message) {
      var event = "message", data = "";
      message.split("\n").forEach(function (line) {
        if (line.indexOf("event: ") === 0) event = line.slice(7);
        else if (line.indexOf("data: ") === 0) data += line.slice(6);
      });
      if (data) handle(event, JSON.parse(data));
    });
    return rest;
  }

  form.addEventListener("submit", function (submit) {
    submit.preventDefault();
    var button = byId("batch-submit");
    button.disabled = true;
    byId("batch-error").hidden = true;
    byId("batch-result").hidden = false;
    byId("batch-rows").tBodies[0].textContent = "";
    byId("batch-summary").tBodies[0].textContent = "";
    byId("judge-summary").hidden = true;
    byId("batch-status").textContent = "running...";
    fetch(form.dataset.apiUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "X-CSRFToken": form.elements.csrfmiddlewaretoken.value
      },
      body: JSON.stringify(body())
    }).then(function (reply) {
      if (!reply.ok) {
        return reply.json().then(function (error) { fail(error.message || reply.statusText); },
          function () { fail(reply.status + " " + reply.statusText); });
      }
      var reader = reply.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) { parse(buffer + "\n\n"); return; }
          buffer = parse(buffer + decoder.decode(chunk.value, { stream: true }));
          return pump();
        });
      }
      return pump();
    }).catch(function (error) {
      fail("The batch stopped: " + error);
    }).then(function () {
      button.disabled = false;
    });
  });
})();
