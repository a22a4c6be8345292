"use strict";
// PerFRDiff reaction viewer. The face geometry is data (DATA.face, from perfrdiff.viewer.face):
// points = neutral + sum_a clip(au_a, 0, 1) * motion[a]; shapes are Catmull-Rom splines through
// named points, built with the same formula as face.py's bezier_controls.
(() => {
  const DATA = JSON.parse(document.getElementById("viewer-data").textContent);
  const FACE = DATA.face;
  const SVG = "http://www.w3.org/2000/svg";
  const AU_COUNT = FACE.motion.length;
  const POINT = Object.fromEntries(FACE.points.map((name, i) => [name, i]));
  const COLOURS = ["#d1495b", "#00798c", "#edae49", "#66a182", "#8d6cab", "#2e4057"];
  const $ = (id) => document.getElementById(id);

  function decode(encoded, channels) {
    const text = atob(encoded.data);
    const codes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) codes[i] = text.charCodeAt(i);
    return { codes, lo: encoded.lo, hi: encoded.hi, channels, frames: codes.length / channels };
  }

  function valueAt(seq, frame, channel) {
    const q = seq.codes[frame * seq.channels + channel];
    return seq.lo[channel] + (q / 255) * (seq.hi[channel] - seq.lo[channel]);
  }

  function frameValues(seq, frame) {
    const out = new Float64Array(seq.channels);
    for (let c = 0; c < seq.channels; c++) out[c] = valueAt(seq, frame, c);
    return out;
  }

  function facePoints(aus) {
    const points = FACE.neutral.map((p) => [p[0], p[1]]);
    for (let a = 0; a < AU_COUNT; a++) {
      const w = Math.min(1, Math.max(0, aus[a]));
      if (w === 0) continue;
      const motion = FACE.motion[a];
      for (let p = 0; p < points.length; p++) {
        points[p][0] += w * motion[p][0];
        points[p][1] += w * motion[p][1];
      }
    }
    return points;
  }

  const fmt = (x) => x.toFixed(2);

  function splinePath(pts, closed) {
    const n = pts.length;
    const at = (i) => (closed ? pts[(i + n) % n] : pts[Math.min(n - 1, Math.max(0, i))]);
    let d = `M${fmt(pts[0][0])},${fmt(pts[0][1])}`;
    for (let i = 0; i < (closed ? n : n - 1); i++) {
      const [p0, p1, p2, p3] = [at(i - 1), at(i), at(i + 1), at(i + 2)];
      const c1 = [p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6];
      const c2 = [p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6];
      d += `C${fmt(c1[0])},${fmt(c1[1])} ${fmt(c2[0])},${fmt(c2[1])} ${fmt(p2[0])},${fmt(p2[1])}`;
    }
    return closed ? d + "Z" : d;
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  class FacePanel {
    constructor(key, title, samples) {
      this.key = key;
      this.sample = 0;
      this.root = document.createElement("div");
      this.root.className = "panel";
      this.root.dataset.panel = key;
      const heading = document.createElement("h2");
      heading.textContent = title;
      if (samples > 1) {
        const pick = document.createElement("select");
        pick.className = "sample";
        for (let k = 0; k < samples; k++) pick.add(new Option(`sample ${k + 1}/${samples}`, k));
        pick.addEventListener("change", () => { this.sample = +pick.value; viewer.redraw(); });
        heading.appendChild(pick);
      }
      this.root.appendChild(heading);
      const body = document.createElement("div");
      body.className = "body";
      this.root.appendChild(body);
      const [w, h] = FACE.size;
      this.svg = el("svg", { class: "face", viewBox: `0 0 ${w} ${h}` }, body);
      this.shapes = FACE.shapes.map((shape) => {
        const tag = shape.kind === "pupil" ? "circle" : shape.kind === "segment" ? "line" : "path";
        const node = el(tag, {
          fill: shape.fill, stroke: shape.stroke, "stroke-width": shape.width,
          "stroke-linecap": "round", "stroke-linejoin": "round", "data-shape": shape.name,
        }, this.svg);
        return { shape, node, index: shape.points.map((name) => POINT[name]) };
      });
      this.buildSide(body);
    }

    buildSide(body) {
      const side = document.createElement("div");
      side.className = "side";
      const va = el("svg", { viewBox: "-1.1 -1.1 2.2 2.2" }, side);
      el("rect", { x: -1, y: -1, width: 2, height: 2, fill: "#f3f3f3", stroke: "#bbb", "stroke-width": 0.02 }, va);
      el("line", { x1: -1, y1: 0, x2: 1, y2: 0, stroke: "#bbb", "stroke-width": 0.015 }, va);
      el("line", { x1: 0, y1: -1, x2: 0, y2: 1, stroke: "#bbb", "stroke-width": 0.015 }, va);
      const label = (text, x, y) => { const t = el("text", { x, y, "font-size": 0.16, fill: "#777", "text-anchor": "middle" }, va); t.textContent = text; };
      label("valence", 0.62, 0.95);
      label("arousal", -0.62, -0.85);
      this.dot = el("circle", { r: 0.09, fill: "#d1495b" }, va);
      this.bars = DATA.expressions.map((name) => {
        const row = document.createElement("div");
        row.className = "bar";
        row.innerHTML = `<span>${name}</span><div></div>`;
        side.appendChild(row);
        return row.lastChild;
      });
      body.appendChild(side);
    }

    draw(values, frame) {
      const points = facePoints(values);
      for (const { shape, node, index } of this.shapes) {
        const pts = index.map((i) => points[i]);
        if (shape.kind === "pupil") {
          const [upper, lower, inner, outer] = pts;
          node.setAttribute("cx", fmt((inner[0] + outer[0]) / 2));
          node.setAttribute("cy", fmt((upper[1] + lower[1]) / 2));
          node.setAttribute("r", fmt(Math.min(4.5, Math.max(0, 0.42 * (lower[1] - upper[1])))));
        } else if (shape.kind === "segment") {
          node.setAttribute("x1", fmt(pts[0][0])); node.setAttribute("y1", fmt(pts[0][1]));
          node.setAttribute("x2", fmt(pts[1][0])); node.setAttribute("y2", fmt(pts[1][1]));
        } else {
          node.setAttribute("d", splinePath(pts, shape.kind === "closed"));
        }
      }
      const clamp = (x) => Math.min(1, Math.max(-1, x));
      this.dot.setAttribute("cx", fmt(clamp(values[DATA.valence])));
      this.dot.setAttribute("cy", fmt(-clamp(values[DATA.arousal])));
      this.bars.forEach((bar, e) => {
        const p = Math.min(1, Math.max(0, values[DATA.expressionStart + e]));
        bar.style.width = `${(p * 48).toFixed(1)}px`;
      });
      this.svg.dataset.frame = frame;
    }
  }

  class Clock {
    // The audio element is the clock; without audio, performance.now() drives one.
    constructor(audio, duration) {
      this.audio = audio; this.duration = duration; this.offset = 0; this.started = null;
    }
    time() {
      if (this.audio) return this.audio.currentTime;
      const t = this.offset + (this.started === null ? 0 : (performance.now() - this.started) / 1000);
      return Math.min(t, this.duration);
    }
    playing() { return this.audio ? !this.audio.paused : this.started !== null; }
    play() {
      if (this.audio) return this.audio.play();
      if (this.started === null) this.started = performance.now();
      return Promise.resolve();
    }
    pause() {
      if (this.audio) return this.audio.pause();
      this.offset = this.time(); this.started = null;
    }
    seek(t) {
      if (this.audio) this.audio.currentTime = t;
      else { this.offset = t; if (this.started !== null) this.started = performance.now(); }
    }
  }

  const viewer = {
    item: null, panels: [], frame: -1, channel: 0, clock: null, readyAt: null, playingAt: null,
    facePoints, splinePath,

    load(position) {
      const spec = DATA.items[position];
      const seq = (q) => decode(q, DATA.channels.length);
      this.item = {
        spec,
        speaker: seq(spec.sequences.speaker),
        listener: seq(spec.sequences.listener),
        modes: Object.fromEntries(Object.entries(spec.modes).map(([m, list]) => [m, list.map(seq)])),
      };
      const audio = $("audio");
      if (spec.audio) { audio.src = spec.audio; audio.hidden = false; }
      else { audio.removeAttribute("src"); audio.hidden = true; }
      this.clock = new Clock(spec.audio ? audio : null, spec.frames / spec.fps);
      const container = $("panels");
      container.replaceChildren();
      this.panels = [new FacePanel("speaker", "speaker", 1), new FacePanel("listener", "real listener", 1)];
      for (const [mode, samples] of Object.entries(this.item.modes)) {
        this.panels.push(new FacePanel(mode, mode, samples.length));
      }
      for (const panel of this.panels) container.appendChild(panel.root);
      $("about").textContent = `${spec.split} item ${spec.index}: speaker ${spec.speakerClip}, ` +
        `listener ${spec.listenerClip}; ${spec.frames} frames at ${spec.fps} fps` +
        (spec.stride > 1 ? ` (every ${spec.stride}th of ${spec.sourceFps} fps)` : "") +
        (spec.start > 0 ? `, from ${spec.start} s` : "");
      this.drawCurves();
      this.showMetrics(spec.metrics);
      this.redraw();
    },

    sequenceOf(panel) {
      if (panel.key === "speaker") return this.item.speaker;
      if (panel.key === "listener") return this.item.listener;
      return this.item.modes[panel.key][panel.sample];
    },

    frameAt(t) {
      const spec = this.item.spec;
      return Math.min(spec.frames - 1, Math.max(0, Math.floor(t * spec.fps + 1e-6)));
    },

    redraw() { this.frame = -1; this.drawCurves(); this.tick(); },

    tick() {
      const t = this.clock.time();
      const frame = this.frameAt(t);
      if (frame !== this.frame) {
        for (const panel of this.panels) panel.draw(frameValues(this.sequenceOf(panel), frame), frame);
        this.frame = frame;
        this.drawCursor(frame);
      }
      if (this.playingAt === null && this.clock.playing() && t > 0) this.playingAt = performance.now();
      document.body.dataset.frame = frame;
      document.body.dataset.time = t;  // the clock time this frame was drawn for
      $("clock").textContent = `${t.toFixed(2)} s`;
      $("play").textContent = this.clock.playing() ? "pause" : "play";
    },

    lines() {
      const lines = [
        { label: "speaker", seq: this.item.speaker, colour: "#999", width: 1.2, dash: [4, 3] },
        { label: "real listener", seq: this.item.listener, colour: "#111", width: 2 },
      ];
      Object.keys(this.item.modes).forEach((mode, m) => {
        const panel = this.panels.find((p) => p.key === mode);
        lines.push({ label: `${mode} (sample ${panel.sample + 1})`, seq: this.item.modes[mode][panel.sample],
          colour: COLOURS[m % COLOURS.length], width: 1.6 });
      });
      return lines;
    },

    drawCurves() {
      if (!this.panels.length) return;
      const canvas = $("curves");
      const ctx = canvas.getContext("2d");
      const { width, height } = canvas;
      ctx.clearRect(0, 0, width, height);
      const lines = this.lines();
      let lo = Infinity, hi = -Infinity;
      for (const { seq } of lines) { lo = Math.min(lo, seq.lo[this.channel]); hi = Math.max(hi, seq.hi[this.channel]); }
      if (!(hi > lo)) { lo -= 0.5; hi += 0.5; }
      const frames = this.item.spec.frames;
      const x = (f) => (f / Math.max(1, frames - 1)) * (width - 1);
      const y = (v) => height - 6 - ((v - lo) / (hi - lo)) * (height - 12);
      for (const line of lines) {
        ctx.beginPath(); ctx.strokeStyle = line.colour; ctx.lineWidth = line.width; ctx.setLineDash(line.dash || []);
        for (let f = 0; f < frames; f++) {
          const v = valueAt(line.seq, f, this.channel);
          if (f === 0) ctx.moveTo(x(f), y(v)); else ctx.lineTo(x(f), y(v));
        }
        ctx.stroke();
      }
      ctx.setLineDash([]);
      ctx.fillStyle = "#555"; ctx.font = "12px sans-serif";
      ctx.fillText(`${DATA.channels[this.channel]}: ${lo.toFixed(2)} .. ${hi.toFixed(2)}`, 6, 14);
      $("legend").innerHTML = lines.map((l) => `<span><i style="background:${l.colour}"></i>${l.label}</span>`).join("");
    },

    drawCursor(frame) {
      const canvas = $("cursor");
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      const x = (frame / Math.max(1, this.item.spec.frames - 1)) * (canvas.width - 1);
      ctx.strokeStyle = "#d1495b"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, canvas.height); ctx.stroke();
    },

    showMetrics(metrics) {
      const rows = Object.entries(metrics || {});
      const box = $("metrics");
      if (!rows.length) { box.textContent = "No metrics.json beside these predictions (run perfrdiff evaluate)."; return; }
      const names = [...new Set(rows.flatMap(([, values]) => Object.keys(values)))];
      box.innerHTML = `<table><caption>metrics of the whole split (perfrdiff evaluate)</caption><tr><th></th>${
        names.map((n) => `<th>${n}</th>`).join("")}</tr>${rows.map(([label, values]) => `<tr><th>${label}</th>${
        names.map((n) => `<td>${n in values ? values[n].toPrecision(4) : ""}</td>`).join("")}</tr>`).join("")}</table>`;
    },

    seekToFraction(fraction) {
      this.clock.seek(fraction * this.item.spec.frames / this.item.spec.fps);
      this.tick();
    },
  };

  function setUp() {
    const itemPicker = $("item");
    DATA.items.forEach((spec, i) => itemPicker.add(new Option(`${spec.split} ${spec.index}`, i)));
    itemPicker.addEventListener("change", () => { viewer.clock.pause(); viewer.load(+itemPicker.value); });
    const channelPicker = $("channel");
    DATA.channels.forEach((name, c) => channelPicker.add(new Option(name, c)));
    viewer.channel = DATA.defaultChannel;
    channelPicker.value = String(viewer.channel);
    channelPicker.addEventListener("change", () => { viewer.channel = +channelPicker.value; viewer.redraw(); });
    $("play").addEventListener("click", () => (viewer.clock.playing() ? viewer.clock.pause() : viewer.clock.play()));
    $("cursor").addEventListener("click", (event) => {
      const box = event.target.getBoundingClientRect();
      viewer.seekToFraction((event.clientX - box.left) / box.width);
    });
    document.addEventListener("keydown", (event) => {
      if (event.code === "Space" && event.target.tagName !== "SELECT") { event.preventDefault(); $("play").click(); }
    });
    const audio = $("audio");
    for (const type of ["seeked", "timeupdate", "pause"]) audio.addEventListener(type, () => viewer.tick());
    viewer.load(0);
    const loop = () => { viewer.tick(); requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
    viewer.readyAt = performance.now();
  }

  window.perfrdiffViewer = viewer;
  setUp();
})();
