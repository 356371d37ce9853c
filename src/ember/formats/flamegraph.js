// ember flamegraph: zoom, reset, search, details. Data comes from the JSON
// payload in #ember-data; names are only ever shown through textContent.
(function () {
  "use strict";
  var doc = document;
  var data = JSON.parse(doc.getElementById("ember-data").textContent);
  var groups = doc.getElementById("frames").children;
  var n = data.depth.length;
  var avail = data.width - 2 * data.xpad;
  var charPx = data.fontSize * data.fontWidth;
  var details = doc.getElementById("details");
  var matchedText = doc.getElementById("matched");
  var unzoomBtn = doc.getElementById("unzoom");
  var clearBtn = doc.getElementById("clear");
  var rects = new Array(n), labels = new Array(n), fills = new Array(n);
  var x0 = new Float64Array(n), w0 = new Float64Array(n), weight = new Float64Array(n);
  var parent = new Int32Array(n), end = new Int32Array(n);
  var zoomed = -1, matches = null;

  function fraction(a, t) { return t ? a / t : 0; }

  (function layout() {
    var i, open = [];
    for (i = 0; i < n; i++) {
      var g = groups[i];
      rects[i] = g.getElementsByTagName("rect")[0];
      labels[i] = g.getElementsByTagName("text")[0];
      fills[i] = rects[i].getAttribute("fill");
      g.setAttribute("data-i", String(i));
      if (data.diff) {
        var m = data.mix;
        x0[i] = m * fraction(data.baseStart[i], data.baseTotal) +
                (1 - m) * fraction(data.headStart[i], data.headTotal);
        w0[i] = m * fraction(data.baseTotals[i], data.baseTotal) +
                (1 - m) * fraction(data.headTotals[i], data.headTotal);
        weight[i] = data.headTotals[i];
      } else {
        x0[i] = fraction(data.start[i], data.total);
        w0[i] = data.total ? data.totals[i] / data.total : 1;
        weight[i] = data.totals[i];
      }
      while (open.length && data.depth[open[open.length - 1]] >= data.depth[i]) {
        end[open.pop()] = i;
      }
      parent[i] = open.length ? open[open.length - 1] : -1;
      open.push(i);
    }
    while (open.length) { end[open.pop()] = n; }
  })();

  function label(i, wpx) {
    var name = data.names[data.frame[i]];
    var chars = Math.floor((wpx - 6) / charPx);
    if (chars < 3) { return ""; }
    return name.length <= chars ? name : name.substring(0, chars - 2) + "..";
  }

  function place(i, x, w) {
    var px = data.xpad + x * avail, wpx = w * avail;
    rects[i].setAttribute("x", px.toFixed(2));
    rects[i].setAttribute("width", wpx.toFixed(2));
    labels[i].setAttribute("x", (px + 3).toFixed(2));
    labels[i].textContent = label(i, wpx);
  }

  function show(i, on, opacity) {
    groups[i].style.display = on ? "" : "none";
    groups[i].style.opacity = opacity || "";
  }

  function zoom(i) {
    i = Number(i);
    if (!(i >= 0 && i < n)) { return false; }
    var j, xi = x0[i], wi = w0[i] || 1;
    for (j = 0; j < n; j++) { show(j, false); }
    for (j = parent[i]; j >= 0; j = parent[j]) { show(j, true, "0.6"); place(j, 0, 1); }
    for (j = i; j < end[i]; j++) {
      show(j, true);
      place(j, (x0[j] - xi) / wi, w0[j] / wi);
    }
    zoomed = i;
    unzoomBtn.style.opacity = "1";
    return true;
  }

  function reset() {
    for (var j = 0; j < n; j++) { show(j, true); place(j, x0[j], w0[j]); }
    zoomed = -1;
    unzoomBtn.style.opacity = "0";
  }

  function matcher(pattern) {
    try { return new RegExp(pattern); } catch (e) {
      var text = String(pattern);
      return { test: function (s) { return s.indexOf(text) >= 0; } };
    }
  }

  function search(pattern) {
    clearSearch();
    if (pattern === null || pattern === undefined || pattern === "") { return null; }
    var re = matcher(pattern), hit = new Uint8Array(data.names.length);
    var k, i, count = 0, value = 0, coveredEnd = -1;
    for (k = 0; k < data.names.length; k++) {
      hit[k] = (data.kinds[k] !== "root" &&
                (re.test(data.names[k]) || (data.files[k] !== "" && re.test(data.files[k])))) ? 1 : 0;
    }
    matches = [];
    for (i = 0; i < n; i++) {
      if (!hit[data.frame[i]]) { continue; }
      matches.push(i);
      rects[i].setAttribute("fill", "rgb(230,0,230)");
      count++;
      if (i >= coveredEnd) { value += weight[i]; coveredEnd = end[i]; }  // count nested once
    }
    var total = weight[0], share = total ? 100 * value / total : 0;
    matchedText.textContent = "Matched: " + share.toFixed(2) + "% (" + count + " frames)";
    clearBtn.style.opacity = "1";
    return { frames: count, value: value, total: total, percent: share };
  }

  function clearSearch() {
    if (matches) {
      for (var k = 0; k < matches.length; k++) {
        rects[matches[k]].setAttribute("fill", fills[matches[k]]);
      }
    }
    matches = null;
    matchedText.textContent = " ";
    clearBtn.style.opacity = "0";
  }

  function indexOf(target) {
    while (target && target.getAttribute && !target.hasAttribute("data-i")) {
      target = target.parentNode;
    }
    return target && target.getAttribute ? Number(target.getAttribute("data-i")) : -1;
  }

  var frameBox = doc.getElementById("frames");
  frameBox.addEventListener("click", function (evt) {
    var i = indexOf(evt.target);
    if (i >= 0) { zoom(i); }
  });
  frameBox.addEventListener("mouseover", function (evt) {
    var i = indexOf(evt.target);
    if (i < 0) { return; }
    var title = groups[i].getElementsByTagName("title")[0];
    details.textContent = title ? title.textContent.replace(/\n/g, " | ") : " ";
  });
  frameBox.addEventListener("mouseout", function () { details.textContent = " "; });
  unzoomBtn.addEventListener("click", reset);
  clearBtn.addEventListener("click", clearSearch);
  doc.getElementById("search").addEventListener("click", function () {
    var p = window.prompt("Search for a function (regular expression):", "");
    if (p !== null) { search(p); }
  });
  window.addEventListener("keydown", function (evt) {
    if ((evt.ctrlKey || evt.metaKey) && evt.key === "f") {
      evt.preventDefault();
      var p = window.prompt("Search for a function (regular expression):", "");
      if (p !== null) { search(p); }
    } else if (evt.key === "Escape") {
      clearSearch();
      reset();
    }
  });

  window.emberFlame = {
    data: data, zoom: zoom, reset: reset, search: search, clearSearch: clearSearch,
    zoomed: function () { return zoomed; },
    visible: function () {
      var out = [];
      for (var j = 0; j < n; j++) { if (groups[j].style.display !== "none") { out.push(j); } }
      return out;
    },
    geometry: function (i) {
      return { x: Number(rects[i].getAttribute("x")), width: Number(rects[i].getAttribute("width")),
               label: labels[i].textContent, fill: rects[i].getAttribute("fill") };
    }
  };
})();
