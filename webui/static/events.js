// Follows the live event feed on /ui/events: new rows on top. The page
// works without it (the latest events are rendered on the server).
(function () {
  "use strict";
  var table = document.getElementById("events");
  var state = document.getElementById("feed-state");
  if (!table || !window.EventSource) {
    if (state) state.textContent = "live updates need JavaScript and EventSource";
    return;
  }
  var body = table.tBodies[0];
  var src = new EventSource("/ui/events/stream?after=" + encodeURIComponent(table.dataset.after || "0"));
  function cell(tr, text, tag) {
    var td = document.createElement("td");
    var el = tag ? document.createElement(tag) : td;
    el.textContent = text; // text only: an event never becomes markup
    if (tag) td.appendChild(el);
    tr.appendChild(td);
  }
  src.addEventListener("open", function () { state.textContent = "live"; });
  src.addEventListener("error", function () { state.textContent = "reconnecting…"; });
  src.addEventListener("kavach", function (msg) {
    var ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    var tr = document.createElement("tr");
    cell(tr, String(ev.seq));
    cell(tr, String(ev.timestamp).replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC"));
    cell(tr, ev.type, "code");
    cell(tr, JSON.stringify(ev.data, null, 2), "pre");
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  });
})();
