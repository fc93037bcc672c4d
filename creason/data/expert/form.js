"use strict";
// Ratings live in this browser's localStorage under a key that names the form, so two forms opened
// from disk (which share the file:// origin) never mix; the CSV download is the record of the study.
(function () {
  var body = document.body;
  var formId = body.getAttribute("data-form-id");
  var criteria = JSON.parse(body.getAttribute("data-criteria"));
  var primary = criteria[0];
  var storeKey = "creason-expert:" + formId;
  var items = Array.prototype.slice.call(document.querySelectorAll("article.item"));
  var raterInput = document.getElementById("rater");
  var statusLine = document.getElementById("save-status");
  var state = load();

  function load() {
    try {
      var saved = JSON.parse(localStorage.getItem(storeKey));
      if (saved && saved.items) return saved;
    } catch (err) { /* nothing saved yet, or storage blocked: start empty */ }
    return { rater: "", items: {} };
  }

  function save() {
    try {
      localStorage.setItem(storeKey, JSON.stringify(state));
      statusLine.textContent = "Saved in this browser at " + new Date().toLocaleTimeString();
    } catch (err) {
      statusLine.textContent = "This browser cannot store ratings: download them before closing the page.";
    }
  }

  function entry(itemId) {
    if (!state.items[itemId]) state.items[itemId] = { choices: {}, comment: "", first_rated_at: null, rated_at: null };
    return state.items[itemId];
  }

  function touch(e) {
    var now = new Date().toISOString();
    if (!e.first_rated_at) e.first_rated_at = now;
    e.rated_at = now;
  }

  function isDone(itemId) {
    var e = state.items[itemId];
    return !!(e && e.choices[primary]);
  }

  function refresh() {
    var done = 0;
    items.forEach(function (article) {
      var id = article.getAttribute("data-item-id");
      var finished = isDone(id);
      if (finished) done += 1;
      article.classList.toggle("done", finished);
      article.querySelector(".state").textContent = finished ? "rated" : "not yet rated";
      var link = document.querySelector('nav.index a[href="#item-' + id + '"]');
      if (link) link.classList.toggle("done", finished);
    });
    document.getElementById("progress").textContent = done + " of " + items.length + " items rated";
  }

  function restore() {
    raterInput.value = state.rater || "";
    items.forEach(function (article) {
      var e = state.items[article.getAttribute("data-item-id")];
      if (!e) return;
      article.querySelectorAll("input[type=radio]").forEach(function (radio) {
        radio.checked = e.choices[radio.getAttribute("data-criterion")] === radio.value;
      });
      article.querySelector("textarea").value = e.comment || "";
    });
  }

  function csvField(value) {
    return '"' + String(value === null || value === undefined ? "" : value).replace(/"/g, '""') + '"';
  }

  function ratingsCsv(rater) {
    var header = ["form_id", "item_id", "rater", "criterion", "choice", "comment", "first_rated_at", "rated_at"];
    var lines = [header.join(",")];
    items.forEach(function (article) {
      var id = article.getAttribute("data-item-id");
      var e = state.items[id];
      if (!e) return;
      criteria.forEach(function (criterion) {
        var choice = e.choices[criterion] || "";
        var comment = criterion === primary ? e.comment : "";
        if (!choice && !comment) return;
        lines.push([formId, id, rater, criterion, choice, comment, e.first_rated_at, e.rated_at].map(csvField).join(","));
      });
    });
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  }

  function download() {
    var rater = raterInput.value.trim();
    if (!rater) {
      statusLine.textContent = "Enter your name or rater code before downloading.";
      raterInput.focus();
      return;
    }
    var blob = new Blob([ratingsCsv(rater)], { type: "text/csv;charset=utf-8" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "ratings-" + formId + "-" + rater.replace(/[^A-Za-z0-9_-]+/g, "_") + ".csv";
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    statusLine.textContent = "Ratings downloaded as " + link.download;
  }

  items.forEach(function (article) {
    var id = article.getAttribute("data-item-id");
    article.querySelectorAll("input[type=radio]").forEach(function (radio) {
      radio.addEventListener("change", function () {
        var e = entry(id);
        e.choices[radio.getAttribute("data-criterion")] = radio.value;
        touch(e); save(); refresh();
      });
    });
    article.querySelector("textarea").addEventListener("input", function (event) {
      var e = entry(id);
      e.comment = event.target.value;
      touch(e); save();
    });
  });
  raterInput.addEventListener("input", function () { state.rater = raterInput.value; save(); });
  document.getElementById("download").addEventListener("click", download);

  restore();
  refresh();
})();
