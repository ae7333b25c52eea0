// Draws the timelines embedded in #timeline-data as SVG. Written for this project; no
// library. Spans are looked up by record index (binary search) for hover and click, so the
// drawn rectangles are only pictures: runs thinner than a pixel are folded into their
// neighbour, and a large trace keeps few DOM nodes.
(function () {
  "use strict";
  var errors = [];
  function fail(msg) {
    errors.push(String(msg));
    document.body.setAttribute("data-errors", errors.join(" | "));
  }
  window.addEventListener("error", function (e) { fail(e.message); });
  document.addEventListener("securitypolicyviolation", function (e) {
    fail("blocked " + e.blockedURI);
  });

  var LABEL = 150, ROW = 16, LANE = 14, SLOTMAP = 96, AXIS = 22;
  var SVGNS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var tip = document.getElementById("tip");
  var detail = document.getElementById("detail");

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }
  // A master's colour: hues spread by the golden angle so neighbours differ.
  function hue(o) { return (o * 137.508 + 200) % 360; }
  function masterColour(o) { return o === null ? "#9aa0a6" : "hsl(" + hue(o) + ",62%,45%)"; }
  function replicaColour(o) { return o === null ? "#c8ccd0" : "hsl(" + hue(o) + ",55%,78%)"; }
  function laneColour(v) {
    switch (v.r) {
      case "master": return masterColour(v.g);
      case "replica": return replicaColour(v.g);
      case "stopped": return "#c0392b";
      case "silent": return "#e67e22";
      default: return null;
    }
  }
  var PHASE = {
    Pending: "#b0bec5", Bootstrapping: "#80cbc4", Ready: "#66bb6a", ScalingOut: "#42a5f5",
    ScalingIn: "#7e57c2", ReplicaScaling: "#26c6da", Recovering: "#ef5350", Rolling: "#ffca28",
    Deleting: "#616161"
  };
  var NOTE = { fault: "#8e24aa", failure: "#c0392b", stuck: "#ef6c00", difference: "#111" };

  // The span of `spans` holding record i, or null.
  function spanAt(spans, i) {
    var lo = 0, hi = spans.length - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1, s = spans[mid];
      if (i < s.a) hi = mid - 1; else if (i >= s.b) lo = mid + 1; else return s;
    }
    return null;
  }
  function ms(t) {
    if (t < 1000) return t + " ms";
    if (t < 120000) return (t / 1000).toFixed(t % 1000 ? 1 : 0) + " s";
    return (t / 60000).toFixed(1) + " min";
  }
  function who(o) { return o === null ? "(gone)" : "#" + o; }

  function Section(tl, index) {
    this.tl = tl;
    this.n = tl.records.length;
    this.a = 0;
    this.b = this.n;
    this.pinned = null;
    var sec = document.createElement("section");
    sec.className = "timeline";
    sec.setAttribute("data-records", this.n);
    sec.setAttribute("data-lanes", tl.lanes.length);
    sec.id = "timeline-" + index;
    var h = document.createElement("h2");
    h.textContent = tl.title;
    sec.appendChild(h);
    var bar = document.createElement("div");
    bar.className = "controls";
    bar.innerHTML = '<button data-z="in">zoom in</button><button data-z="out">zoom out</button>' +
      '<button data-z="all">whole trace</button><span class="range"></span>' +
      '<span class="hint">wheel: zoom · drag: pan · click: details · ←/→: step</span>';
    sec.appendChild(bar);
    this.range = bar.querySelector(".range");
    this.svg = document.createElementNS(SVGNS, "svg");
    this.svg.setAttribute("class", "plot");
    sec.appendChild(this.svg);
    document.getElementById("app").appendChild(sec);
    this.sec = sec;
    this.layout();
    this.bind(bar);
    this.draw();
  }

  // Rows from top to bottom: [kind, label, height, lane ordinal or condition index].
  Section.prototype.layout = function () {
    var tl = this.tl, rows = [], y = AXIS;
    function add(kind, label, h, arg) { rows.push({ kind: kind, label: label, y: y, h: h, arg: arg }); y += h; }
    add("spec", "spec", ROW);
    add("phase", "phase", ROW + 2);
    tl.conditions.forEach(function (c, k) { add("cond", c.k, 12, k); });
    y += 4;
    add("slots", "slots 0–16383", SLOTMAP);
    y += 4;
    add("moves", "migrations", ROW);
    add("effects", "effects", ROW);
    add("notes", "faults/failures", ROW);
    y += 6;
    tl.lanes.forEach(function (l, k) { add("lane", "node #" + l.o, LANE, k); });
    this.rows = rows;
    this.height = y + 8;
  };

  Section.prototype.width = function () {
    return Math.max(600, this.sec.clientWidth - 4);
  };

  Section.prototype.x = function (i) {
    return LABEL + (i - this.a) / (this.b - this.a) * (this.w - LABEL - 8);
  };

  Section.prototype.indexAt = function (px) {
    var f = (px - LABEL) / (this.w - LABEL - 8);
    var i = Math.floor(this.a + f * (this.b - this.a));
    return Math.max(this.a, Math.min(this.b - 1, i));
  };

  // Rectangles for a list of spans on one row, folding runs thinner than a pixel.
  Section.prototype.spanRects = function (spans, y, h, colour, attrs) {
    var out = [], lastEnd = -1, self = this;
    spans.forEach(function (s) {
      if (s.b <= self.a || s.a >= self.b) return;
      var x0 = self.x(Math.max(s.a, self.a)), x1 = self.x(Math.min(s.b, self.b));
      if (x1 <= lastEnd + 0.5) return;
      x0 = Math.max(x0, lastEnd);
      var c = colour(s.v);
      lastEnd = x1;
      if (!c) return;
      out.push('<rect x="' + x0.toFixed(1) + '" y="' + y + '" width="' + Math.max(0.6, x1 - x0).toFixed(1) +
        '" height="' + h + '" fill="' + c + '"' + (attrs ? attrs(s) : "") + "/>");
    });
    return out.join("");
  };

  // One tick per pixel column holding at least one record that `has` something.
  Section.prototype.ticks = function (y, h, has, cls) {
    var out = [], lastPx = -1;
    for (var i = this.a; i < this.b; i++) {
      var what = has(i);
      if (!what) continue;
      var px = Math.floor(this.x(i));
      if (px === lastPx) continue;
      lastPx = px;
      var wdt = Math.max(2, this.x(i + 1) - this.x(i) - 1);
      out.push('<rect class="' + cls + '" data-i="' + i + '" x="' + px + '" y="' + y + '" width="' +
        wdt.toFixed(1) + '" height="' + h + '" fill="' + what + '"/>');
    }
    return out.join("");
  };

  Section.prototype.draw = function () {
    var tl = this.tl, self = this, parts = [];
    this.w = this.width();
    this.svg.setAttribute("width", this.w);
    this.svg.setAttribute("height", this.height);
    this.svg.setAttribute("data-window", this.a + "-" + this.b);
    this.range.textContent = "records " + this.a + "–" + (this.b - 1) + " of " + this.n +
      " · " + ms(tl.times[this.a] || 0) + " – " + ms(tl.times[this.b - 1] || 0);
    parts.push(this.axis());
    this.rows.forEach(function (r) {
      parts.push('<text class="label' + (r.h < 14 ? " small" : "") + '" x="4" y="' + (r.y + Math.min(r.h, 14) - 3) + '">' + esc(r.label) + "</text>");
      parts.push(self.row(r));
    });
    if (tl.diverged_at !== null && tl.diverged_at >= this.a && tl.diverged_at < this.b) {
      var dx = this.x(tl.diverged_at).toFixed(1);
      parts.push('<line class="diverged" x1="' + dx + '" x2="' + dx + '" y1="' + AXIS + '" y2="' +
        this.height + '"/><text class="diverged-label" x="' + (+dx + 3) + '" y="' + (AXIS - 4) +
        '">decision differs here</text>');
    }
    if (this.pinned !== null && this.pinned >= this.a && this.pinned < this.b) {
      var px = this.x(this.pinned).toFixed(1), pw = Math.max(1, this.x(this.pinned + 1) - this.x(this.pinned));
      parts.push('<rect class="cursor" x="' + px + '" y="' + AXIS + '" width="' + pw.toFixed(1) +
        '" height="' + (this.height - AXIS) + '"/>');
    }
    this.svg.innerHTML = parts.join("");
  };

  Section.prototype.axis = function () {
    var out = [], steps = Math.max(2, Math.floor((this.w - LABEL) / 110));
    for (var k = 0; k <= steps; k++) {
      var i = Math.min(this.b - 1, Math.floor(this.a + k / steps * (this.b - this.a)));
      var x = this.x(i);
      out.push('<line class="grid" x1="' + x.toFixed(1) + '" x2="' + x.toFixed(1) + '" y1="' + (AXIS - 4) +
        '" y2="' + this.height + '"/><text class="tick" x="' + (x + 2).toFixed(1) + '" y="12">' +
        esc(ms(this.tl.times[i] || 0)) + "</text>");
    }
    return '<g class="axis">' + out.join("") + "</g>";
  };

  Section.prototype.row = function (r) {
    var tl = this.tl, self = this;
    switch (r.kind) {
      case "spec":
        return '<g class="spec">' + this.spanRects(tl.specs, r.y + 2, r.h - 4, function () { return "#eceff1"; },
          function (s) { return ' data-spec="' + esc(s.v) + '"'; }) + this.spanLabels(tl.specs, r, function (v) { return v; }) + "</g>";
      case "phase":
        return '<g class="phases">' + this.spanRects(tl.phases, r.y + 1, r.h - 2, function (v) { return PHASE[v] || "#999"; },
          function (s) { return ' class="phase" data-phase="' + s.v + '" data-a="' + s.a + '" data-b="' + s.b + '"'; }) +
          this.spanLabels(tl.phases, r, function (v) { return v; }) + "</g>";
      case "cond":
        var c = tl.conditions[r.arg];
        return '<g class="condition" data-kind="' + c.k + '">' + this.spanRects(c.sp, r.y + 1, r.h - 2,
          function (v) { return v[0] ? (c.k === "Ready" ? "#66bb6a" : c.k === "Progressing" ? "#42a5f5" : "#ef5350") : "#f1f3f4"; },
          function (s) { return ' data-status="' + s.v[0] + '"'; }) + "</g>";
      case "slots":
        return this.slotMap(r);
      case "moves":
        return '<g class="moves">' + this.spanRects(tl.moves, r.y + 2, r.h - 4, function () { return "#ffb300"; },
          function (s) { return ' class="move" data-a="' + s.a + '" data-b="' + s.b + '"'; }) +
          this.ticks(r.y + r.h / 2 - 2, 4, function (i) {
            return tl.records[i].e.some(function (e) { return e[0] === "migrate_slots" || e[0] === "move_stray_keys"; }) ? "#1565c0" : null;
          }, "decided-move") + "</g>";
      case "effects":
        return '<g class="effects">' + this.ticks(r.y + 2, r.h - 4, function (i) {
          return tl.records[i].e.length ? "#37474f" : null;
        }, "effect") + "</g>";
      case "notes":
        var byIndex = this.notesByIndex();
        return '<g class="notes">' + this.ticks(r.y + 2, r.h - 4, function (i) {
          var ns = byIndex[i];
          return ns ? NOTE[ns[0].k] : null;
        }, "note") + "</g>";
      case "lane":
        var lane = tl.lanes[r.arg];
        var marks = this.ticksAt(this.touches(lane.o), r.y + LANE - 4, 3, "#111", "effect-mark");
        return '<g class="lane" data-ordinal="' + lane.o + '"><line class="lane-base" x1="' + LABEL + '" x2="' +
          (this.w - 8) + '" y1="' + (r.y + LANE / 2) + '" y2="' + (r.y + LANE / 2) + '"/>' +
          this.spanRects(lane.sp, r.y + 1, LANE - 2, laneColour, function (s) {
            return ' class="span" data-role="' + s.v.r + '" data-group="' + (s.v.g === null ? "" : s.v.g) +
              '" data-slots="' + s.v.s + '" data-flag="' + s.v.f + '" data-a="' + s.a + '" data-b="' + s.b + '"';
          }) + this.spanLabels(lane.sp, r, function (v) {
            return v.r === "master" ? (v.s ? "master · " + v.s + " slots" : "master · no slot") :
              v.r === "replica" ? "replica of " + who(v.g) : v.r === "absent" ? "" : v.r;
          }, "lane-text") + this.flags(lane, r) + marks + "</g>";
    }
    return "";
  };

  // A red (fail) or orange (fail?) line over the part of a lane that others flag.
  Section.prototype.flags = function (lane, r) {
    return this.spanRects(lane.sp, r.y, 2, function (v) {
      return v.f === "fail" ? "#b71c1c" : v.f === "fail?" ? "#fb8c00" : null;
    });
  };

  Section.prototype.spanLabels = function (spans, r, text, cls) {
    var out = [], self = this;
    spans.forEach(function (s) {
      if (s.b <= self.a || s.a >= self.b) return;
      var x0 = self.x(Math.max(s.a, self.a)), x1 = self.x(Math.min(s.b, self.b));
      var t = text(s.v);
      if (x1 - x0 > t.length * 6.5 + 6) {
        out.push('<text class="' + (cls || "in") + '" x="' + (x0 + 3).toFixed(1) + '" y="' + (r.y + r.h - 4) + '">' + esc(t) + "</text>");
      }
    });
    return out.join("");
  };

  // The slot map: a rectangle per band, where a band that stays the same (same slots, same
  // owner) across consecutive spans is one rectangle: a failover redraws only its shard.
  Section.prototype.slotMap = function (r) {
    var out = [], self = this, lastEnd = -1, scale = r.h / 16384, open = {};
    function flush(key) {
      var o = open[key], b = o.band;
      var y0 = r.y + b[0] * scale, h = Math.max(0.5, (b[1] - b[0] + 1) * scale);
      out.push('<rect class="band" data-owner="' + (b[2] === null ? "" : b[2]) + '" data-start="' + b[0] +
        '" data-end="' + b[1] + '" data-a="' + o.a + '" data-b="' + o.b + '" x="' + o.x0.toFixed(1) + '" y="' +
        y0.toFixed(2) + '" width="' + Math.max(0.6, o.x1 - o.x0).toFixed(1) + '" height="' + h.toFixed(2) + '" fill="' +
        (b[2] === null ? "url(#unserved)" : masterColour(b[2])) + '"' + (b[3] ? ' stroke="#b71c1c" stroke-width="1"' : "") + "/>");
      delete open[key];
    }
    this.tl.slots.forEach(function (s) {
      if (s.b <= self.a || s.a >= self.b) return;
      var x0 = self.x(Math.max(s.a, self.a)), x1 = self.x(Math.min(s.b, self.b));
      if (x1 <= lastEnd + 0.5) return;
      x0 = Math.max(x0, lastEnd);
      lastEnd = x1;
      var here = {};
      s.v.forEach(function (b) {
        var key = b.join(",");
        here[key] = true;
        if (open[key]) { open[key].x1 = x1; open[key].b = s.b; }
        else open[key] = { band: b, x0: x0, x1: x1, a: s.a, b: s.b };
      });
      Object.keys(open).forEach(function (key) { if (!here[key]) flush(key); });
    });
    Object.keys(open).forEach(flush);
    return '<defs><pattern id="unserved" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      '<rect width="6" height="6" fill="#fff"/><rect width="2" height="6" fill="#e57373"/></pattern></defs>' +
      '<g class="slots"><rect class="frame" x="' + LABEL + '" y="' + r.y + '" width="' + (this.w - LABEL - 8) +
      '" height="' + r.h + '"/>' + out.join("") + "</g>";
  };

  // For each member, the records whose effects touch it, once: a lane's marks are drawn from
  // its own list instead of scanning every record.
  Section.prototype.touches = function (o) {
    if (!this._touches) {
      var m = {};
      this.tl.records.forEach(function (rec, i) {
        rec.e.forEach(function (e) {
          e[2].forEach(function (t) {
            var l = m[t] || (m[t] = []);
            if (l[l.length - 1] !== i) l.push(i);
          });
        });
      });
      this._touches = m;
    }
    return this._touches[o] || [];
  };

  // Ticks at the given record indices (sorted), one per pixel column.
  Section.prototype.ticksAt = function (indices, y, h, colour, cls) {
    var out = [], lastPx = -1, lo = 0, hi = indices.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (indices[mid] < this.a) lo = mid + 1; else hi = mid; }
    for (var k = lo; k < indices.length && indices[k] < this.b; k++) {
      var i = indices[k], px = Math.floor(this.x(i));
      if (px === lastPx) continue;
      lastPx = px;
      var wdt = Math.max(2, this.x(i + 1) - this.x(i) - 1);
      out.push('<rect class="' + cls + '" data-i="' + i + '" x="' + px + '" y="' + y + '" width="' +
        wdt.toFixed(1) + '" height="' + h + '" fill="' + colour + '"/>');
    }
    return out.join("");
  };

  Section.prototype.notesByIndex = function () {
    if (!this._notes) {
      var m = {};
      this.tl.notes.forEach(function (n) { (m[n.i] = m[n.i] || []).push(n); });
      this._notes = m;
    }
    return this._notes;
  };

  // Words for what is under the pointer: the row's own story at record i.
  Section.prototype.describe = function (r, i) {
    var tl = this.tl, rec = tl.records[i], head = "<b>record " + i + "</b> · t=" + esc(ms(tl.times[i])) + "<br>";
    var s;
    switch (r.kind) {
      case "spec": s = spanAt(tl.specs, i); return head + "spec: " + esc(s ? s.v : "?") + " (masters x replicas)";
      case "phase": return head + "phase " + esc(rec.h) + " → <b>" + esc(rec.p) + "</b><br>" + esc(tl.strings[rec.s]);
      case "cond":
        var c = tl.conditions[r.arg]; s = spanAt(c.sp, i);
        return head + esc(c.k) + " = " + (s ? s.v[0] : "?") + (s ? " · " + esc(s.v[1]) + "<br>" + esc(s.v[2]) : "");
      case "slots": return head + this.slotsText(i, r);
      case "moves": return head + this.movesText(i);
      case "effects": return head + this.effectsText(i);
      case "notes": return head + this.notesText(i);
      case "lane": return head + this.laneText(r.arg, i);
    }
    return head;
  };

  Section.prototype.slotsText = function (i, r) {
    var s = spanAt(this.tl.slots, i);
    if (!s) return "no slot map";
    var lines = s.v.map(function (b) {
      return (b[0] === b[1] ? b[0] : b[0] + "–" + b[1]) + ": " + (b[2] === null ? "<b>not served</b>" : "#" + b[2]) +
        (b[3] ? " (claimed by more than one master)" : "");
    });
    return "slots claimed by the masters that answer:<br>" + lines.join("<br>");
  };

  Section.prototype.movesText = function (i) {
    var s = spanAt(this.tl.moves, i), rec = this.tl.records[i], out = [];
    if (s) s.v.forEach(function (m) {
      out.push("in flight " + who(m[0]) + " → " + who(m[1]) + ": " + m[2] + " slot(s) open, " + m[3] +
        " key(s) left on the source, " + m[4] + " on the target");
    });
    rec.e.forEach(function (e) {
      if (e[0] === "migrate_slots" || e[0] === "move_stray_keys") out.push("decided: " + this.tl.strings[e[1]]);
    }, this);
    return out.length ? out.map(esc).join("<br>") : "no migration";
  };

  Section.prototype.effectsText = function (i) {
    var rec = this.tl.records[i], tl = this.tl;
    if (!rec.e.length) return "no effect · " + esc(tl.strings[rec.s]);
    return "<b>" + rec.e.length + " effect(s)</b>, phase " + esc(rec.p) + "<br>" +
      rec.e.slice(0, 12).map(function (e) { return "• " + esc(tl.strings[e[1]]); }).join("<br>") +
      (rec.e.length > 12 ? "<br>… " + (rec.e.length - 12) + " more" : "") +
      "<br><i>why:</i> " + esc(tl.strings[rec.s]);
  };

  Section.prototype.notesText = function (i) {
    var ns = this.notesByIndex()[i];
    return ns ? ns.map(function (n) { return esc(n.k + ": " + n.t); }).join("<br>") : "nothing failing";
  };

  Section.prototype.laneText = function (k, i) {
    var tl = this.tl, lane = tl.lanes[k], s = spanAt(lane.sp, i), rec = tl.records[i];
    if (!s) return "node #" + lane.o + ": not a member yet";
    var v = s.v, txt = "node #" + lane.o + ": <b>" + esc(v.r) + "</b>";
    if (v.r === "master") txt += v.s ? ", " + v.s + " slots" : ", no slot";
    if (v.r === "replica") txt += " of " + (v.g === null ? "an unknown master" : "#" + v.g);
    if (v.f) txt += ", flagged <b>" + esc(v.f) + "</b> by another node";
    if (v.r === "master" || v.r === "replica") txt += "<br>keys " + v.k0 + (v.k1 !== v.k0 ? " → " + v.k1 : "") + " over records " + s.a + "–" + (s.b - 1);
    var mine = rec.e.filter(function (e) { return e[2].indexOf(lane.o) >= 0; });
    if (mine.length) {
      txt += "<br>effects on it: " + mine.map(function (e) { return esc(tl.strings[e[1]]); }).join("; ") +
        "<br><i>why:</i> " + esc(tl.strings[rec.s]);
    }
    return txt;
  };

  // Everything about one record, pinned beside the plot.
  Section.prototype.details = function (i) {
    var tl = this.tl, rec = tl.records[i], self = this, html = [];
    html.push("<h3>" + esc(tl.title) + " · record " + i + "</h3>");
    html.push("<p>t=" + esc(ms(tl.times[i])) + " · phase " + esc(rec.h) + " → <b>" + esc(rec.p) + "</b>" +
      (rec.q === null ? " · observe again on change" : " · again in " + esc(ms(rec.q))) + "</p>");
    html.push("<p><i>why:</i> " + esc(tl.strings[rec.s]) + "</p>");
    html.push("<h4>effects (" + rec.e.length + ")</h4><ol class=\"effects\">" + rec.e.map(function (e) {
      return '<li data-kind="' + e[0] + '">' + esc(tl.strings[e[1]]) + "</li>";
    }).join("") + "</ol>");
    html.push("<h4>conditions</h4><ul>" + tl.conditions.map(function (c) {
      var s = spanAt(c.sp, i);
      return s ? "<li><b>" + esc(c.k) + "</b> " + s.v[0] + " · " + esc(s.v[1]) + (s.v[2] ? ": " + esc(s.v[2]) : "") + "</li>" : "";
    }).join("") + "</ul>");
    html.push("<h4>migrations</h4><p>" + this.movesText(i) + "</p>");
    html.push("<h4>faults and failures</h4><p>" + this.notesText(i) + "</p>");
    html.push("<h4>nodes</h4><ul class=\"nodes\">" + tl.lanes.map(function (l, k) {
      return "<li>" + self.laneText(k, i).replace(/<br>.*$/, "") + "</li>";
    }).join("") + "</ul>");
    detail.innerHTML = html.join("");
    detail.setAttribute("data-record", i);
    detail.hidden = false;
  };

  Section.prototype.rowAt = function (y) {
    for (var k = 0; k < this.rows.length; k++) {
      var r = this.rows[k];
      if (y >= r.y && y < r.y + r.h) return r;
    }
    return null;
  };

  Section.prototype.zoom = function (factor, centre) {
    var span = this.b - this.a, next = Math.max(Math.min(10, this.n), Math.round(span * factor));
    next = Math.min(this.n, next);
    var c = centre === undefined ? (this.a + this.b) / 2 : centre;
    var a = Math.round(c - (c - this.a) * next / span);
    a = Math.max(0, Math.min(this.n - next, a));
    this.a = a;
    this.b = a + next;
    this.schedule();
  };

  Section.prototype.schedule = function () {
    var self = this;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(function () { self.pending = false; self.draw(); });
  };

  Section.prototype.bind = function (bar) {
    var self = this, drag = null;
    bar.addEventListener("click", function (e) {
      var z = e.target.getAttribute && e.target.getAttribute("data-z");
      if (z === "in") self.zoom(0.5);
      else if (z === "out") self.zoom(2);
      else if (z === "all") { self.a = 0; self.b = self.n; self.schedule(); }
    });
    function local(e) {
      var box = self.svg.getBoundingClientRect();
      return { x: e.clientX - box.left, y: e.clientY - box.top };
    }
    this.svg.addEventListener("wheel", function (e) {
      var p = local(e);
      if (p.x < LABEL) return;
      e.preventDefault();
      self.zoom(e.deltaY < 0 ? 0.8 : 1.25, self.indexAt(p.x));
    }, { passive: false });
    this.svg.addEventListener("mousedown", function (e) {
      drag = { x: local(e).x, a: self.a, b: self.b, moved: false };
    });
    window.addEventListener("mouseup", function () { setTimeout(function () { drag = null; }, 0); });
    this.svg.addEventListener("mousemove", function (e) {
      var p = local(e);
      if (drag && e.buttons & 1) {
        var per = (self.b - self.a) / (self.w - LABEL - 8);
        var shift = Math.round((drag.x - p.x) * per);
        if (shift !== 0) drag.moved = true;
        var a = Math.max(0, Math.min(self.n - (drag.b - drag.a), drag.a + shift));
        if (a !== self.a) { self.a = a; self.b = a + (drag.b - drag.a); self.schedule(); }
        return;
      }
      var r = self.rowAt(p.y);
      if (!r || p.x < LABEL) { tip.hidden = true; return; }
      tip.innerHTML = self.describe(r, self.indexAt(p.x));
      tip.hidden = false;
      var tx = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      tip.style.left = Math.max(4, tx) + "px";
      tip.style.top = (e.clientY + 16 + window.scrollY) + "px";
    });
    this.svg.addEventListener("mouseleave", function () { tip.hidden = true; });
    this.svg.addEventListener("click", function (e) {
      if (drag && drag.moved) return;
      var p = local(e);
      if (p.x < LABEL) return;
      self.pin(self.indexAt(p.x));
    });
  };

  Section.prototype.pin = function (i) {
    this.pinned = i;
    current = this;
    this.details(i);
    this.schedule();
  };

  var current = null;
  document.addEventListener("keydown", function (e) {
    if (!current || current.pinned === null) return;
    if (e.key === "ArrowRight") current.pin(Math.min(current.n - 1, current.pinned + 1));
    else if (e.key === "ArrowLeft") current.pin(Math.max(0, current.pinned - 1));
  });

  var started = performance.now();
  var sections = data.map(function (tl, k) { return new Section(tl, k); });
  document.body.setAttribute("data-render-ms", Math.round(performance.now() - started));
  var resize = null;
  window.addEventListener("resize", function () {
    clearTimeout(resize);
    resize = setTimeout(function () { sections.forEach(function (s) { s.draw(); }); }, 100);
  });
  // `#record=N` (or `#record=N&timeline=K`) opens with that record's details: a link can
  // point at the moment that matters.
  var want = /record=(\d+)/.exec(location.hash), which = /timeline=(\d+)/.exec(location.hash);
  var first = sections[which ? Math.min(+which[1], sections.length - 1) : 0];
  if (first && first.n) {
    var start = first.tl.diverged_at !== null ? first.tl.diverged_at : 0;
    first.pin(want ? Math.min(+want[1], first.n - 1) : start);
  }
  document.body.setAttribute("data-rendered", sections.length);
})();
