// Keyframe's web page: browse, search, sign up / in, play from the edge.
// Plain JavaScript, no build step; it talks only to the catalog's JSON API, and
// plays from the signed edge URL that /api/content/{id}/play returns.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PAGE = 24;
  const state = {
    me: null,
    offset: 0,
    nextOffset: null,
    query: { q: "", category: "", sort: "" },
    current: null, // the detail of the open title
    listToken: 0, // drops answers to superseded list requests
    rowsToken: 0,
    viewKey: null, // the address of the view on screen (its list is not reloaded)
    homeRowsLoaded: false,
    categories: [],
    categoriesLoading: null,
    // The playback URL in use: renewed when its token runs out (a long pause).
    playback: { id: null, expiresAt: 0, renewing: false, retried: false, lastTime: 0, startReported: false },
  };

  // ---- API ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, { method = "GET", json, body, headers = {} } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
    }
    const res = await fetch(path, init);
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    if (!res.ok) {
      throw new ApiError(res.status, (data && data.code) || "http_" + res.status,
        (data && data.error) || res.statusText || "request failed");
    }
    return data;
  }

  // An endpoint that may not exist yet (history, recommendations): null on 404.
  async function optional(path) {
    try {
      return await api(path);
    } catch (e) {
      if (e.status === 404 || e.status === 401 || e.status === 501) return null;
      throw e;
    }
  }

  // ---- status line -------------------------------------------------------

  let statusTimer = 0;
  function say(text, isError = false) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", isError);
    clearTimeout(statusTimer);
    if (text) statusTimer = setTimeout(() => { el.textContent = ""; }, 6000);
  }

  // ---- formatting --------------------------------------------------------

  function duration(ms) {
    if (ms == null) return "";
    const s = Math.round(ms / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}` : `${m}:${String(sec).padStart(2, "0")}`;
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }

  // ---- cards -------------------------------------------------------------

  // A title's card: a real link to the title's own URL (open in a new tab works),
  // which the page follows itself (History API) on a plain click.
  function card(item, progress) {
    let poster;
    if (item.poster) {
      poster = el("img", { class: "poster", src: item.poster.url, alt: "", loading: "lazy", decoding: "async" });
      if (item.poster.inline_thumbnail) poster.style.backgroundImage = `url("${item.poster.inline_thumbnail}")`;
    } else {
      poster = el("span", { class: "poster placeholder", "aria-hidden": "true", text: (item.title || "?").slice(0, 1).toUpperCase() });
    }
    const sub = [item.kind, duration(item.duration_ms)].filter(Boolean).join(" · ");
    const bar = progress != null
      ? el("span", { class: "progress", "aria-hidden": "true" }, el("span"))
      : null;
    if (bar) bar.firstChild.style.width = `${Math.min(100, Math.max(0, progress * 100))}%`;
    return el("a", {
      class: "card", "data-id": item.id, href: routePath({ view: "title", id: item.id }),
      "aria-label": `${item.title}${sub ? ", " + sub : ""}`,
      onclick: (ev) => {
        if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
        ev.preventDefault();
        goTitle(item.id);
      },
    }, el("span", { class: "frame" }, poster, bar), el("span", { class: "info" },
      el("span", { class: "name", text: item.title }),
      el("span", { class: "sub", text: sub })));
  }

  // ---- addresses and history ----------------------------------------------
  //
  // Every view has its own URL, which the server answers with this page:
  //   /                      home: rows (continue, recommended, trending, one per
  //                          category) and every title in a grid (?sort=)
  //   /search?q=…            search results (?sort=)
  //   /category/{name}       one category (?sort=)
  //   /title/{id}            a title, over the view it was opened from (kept in
  //                          history.state.base; home for a deep link)
  // Links and the search box push (or, while typing, replace) history entries;
  // popstate renders whatever the address says.

  function parseRoute(loc = window.location) {
    const sp = new URLSearchParams(loc.search);
    const sort = sp.get("sort") || "";
    let m;
    if ((m = loc.pathname.match(/^\/title\/([^/]+)$/))) return { view: "title", id: decodeURIComponent(m[1]) };
    if (loc.pathname === "/search") return { view: "search", q: (sp.get("q") || "").trim(), sort };
    if ((m = loc.pathname.match(/^\/category\/([^/]+)$/))) return { view: "category", category: decodeURIComponent(m[1]), sort };
    return { view: "home", sort };
  }

  function routePath(r) {
    if (r.view === "title") return `/title/${encodeURIComponent(r.id)}`;
    const sp = new URLSearchParams();
    if (r.view === "search") sp.set("q", r.q || "");
    if (r.sort) sp.set("sort", r.sort);
    const qs = [...sp.keys()].length ? `?${sp}` : "";
    if (r.view === "search") return `/search${qs}`;
    if (r.view === "category") return `/category/${encodeURIComponent(r.category)}${qs}`;
    return `/${qs}`;
  }

  const here = () => window.location.pathname + window.location.search;

  // Goes to a view (not a title: goTitle) and renders it.
  function navigate(path, { replace = false } = {}) {
    if (replace) history.replaceState({}, "", path);
    else if (path !== here()) history.pushState({}, "", path);
    route();
  }

  function goTitle(id) {
    const cur = parseRoute();
    const base = cur.view === "title" ? ((history.state && history.state.base) || "/") : here();
    history.pushState({ base, pushed: true }, "", routePath({ view: "title", id }));
    route();
  }

  // Renders what the address says.
  function route() {
    const r = parseRoute();
    if (r.view === "title") {
      const base = (history.state && history.state.base) || "/";
      showView(parseRoute(new URL(base, window.location.origin)));
      if (!state.current || state.current.id !== r.id || !$("title-dialog").open) openTitle(r.id);
    } else {
      if ($("title-dialog").open) $("title-dialog").close();
      showView(r);
    }
  }

  // ---- browse and search -------------------------------------------------

  function showView(r) {
    const key = routePath(r);
    const q = r.q || "", category = r.category || "", sort = r.sort || "";
    if (document.activeElement !== $("search")) $("search").value = q;
    $("category").value = category;
    if ($("category").value !== category) {
      $("category").append(el("option", { value: category, text: category }));
      $("category").value = category;
    }
    $("sort").value = sort;
    const home = r.view === "home";
    for (const id of ["hero", "continue-row", "recommend-row", "rows"]) $(id).classList.toggle("off", !home);
    $("browse-title").textContent = r.view === "search" ? (q ? `Results for “${q}”` : "Search")
      : r.view === "category" ? category : "All titles";
    if (!state.current) document.title = r.view === "home" ? "Keyframe" : `${$("browse-title").textContent} · Keyframe`;
    if (key === state.viewKey) return;
    state.viewKey = key;
    state.query = { q, category, sort };
    loadList(true);
    if (home && !state.homeRowsLoaded) { state.homeRowsLoaded = true; loadHomeRows(); }
  }

  async function loadList(reset) {
    const token = ++state.listToken;
    if (reset) {
      // Another view's titles never stand under this view's heading.
      state.offset = 0;
      $("grid").replaceChildren();
      $("empty").hidden = true;
      $("more").hidden = true;
    }
    const p = new URLSearchParams({ limit: String(PAGE), offset: String(state.offset) });
    for (const k of ["q", "category", "sort"]) if (state.query[k]) p.set(k, state.query[k]);
    try {
      const page = await api(`/api/content?${p}`);
      if (token !== state.listToken) return;
      const grid = $("grid");
      if (reset) grid.replaceChildren();
      for (const item of page.items) grid.append(card(item));
      state.nextOffset = page.next_offset;
      state.offset = page.next_offset ?? state.offset;
      $("more").hidden = page.next_offset == null;
      $("empty").hidden = grid.children.length > 0;
      $("empty").textContent = state.query.q ? `No titles match “${state.query.q}”.` : "Nothing here yet.";
    } catch (e) {
      if (token === state.listToken) say(`Could not load titles: ${e.message}`, true);
    }
  }

  async function loadCategories() {
    try {
      state.categories = await api("/api/categories");
      const select = $("category");
      const chosen = select.value;
      for (const c of state.categories) {
        const text = `${c.name} (${c.count})`;
        const known = [...select.options].find((o) => o.value === c.name);
        if (known) known.textContent = text; else select.append(el("option", { value: c.name, text }));
      }
      select.value = chosen;
    } catch (_) {
      state.categories = []; // the filter stays at "all"
    }
    return state.categories;
  }

  // One horizontal row of cards with a heading (and a link to see them all).
  function row(key, heading, items, href) {
    const head = el("div", { class: "row-head" }, el("h2", { text: heading }));
    if (href) {
      head.append(el("a", {
        class: "see-all", href, text: "See all",
        onclick: (ev) => {
          if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
          ev.preventDefault();
          navigate(href);
          window.scrollTo(0, 0);
        },
      }));
    }
    return el("section", { class: "row", "data-row": key }, head,
      el("div", { class: "strip" }, ...items.map((it) => card(it))));
  }

  // Home's banner: the top trending title, over its own poster.
  function hero(item) {
    const box = $("hero");
    if (!item) { box.hidden = true; return; }
    const open = (ev) => {
      if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      ev.preventDefault();
      goTitle(item.id);
    };
    const href = routePath({ view: "title", id: item.id });
    const parts = [];
    if (item.poster) {
      const back = el("img", { class: "hero-backdrop", src: item.poster.url, alt: "", decoding: "async" });
      if (item.poster.inline_thumbnail) back.style.backgroundImage = `url("${item.poster.inline_thumbnail}")`;
      parts.push(back);
    }
    const meta = [item.kind, duration(item.duration_ms), (item.categories || []).join(", ")].filter(Boolean).join(" · ");
    parts.push(el("div", { class: "hero-body" },
      el("p", { class: "hero-kicker", text: "Trending now" }),
      el("h1", { id: "hero-title", text: item.title }),
      el("p", { class: "meta", text: meta }),
      item.description ? el("p", { class: "hero-text", text: item.description }) : null,
      el("div", { class: "actions" },
        el("a", { class: "button primary", href, onclick: open, text: "▶ Watch" }))));
    box.replaceChildren(...parts);
    box.hidden = false;
  }

  // Home's rows: trending in the viewer's region (the trending sort fills in
  // while there is no watch history yet), then one row per category.
  async function loadHomeRows() {
    const token = ++state.rowsToken;
    const cats = state.categoriesLoading ? await state.categoriesLoading : await loadCategories();
    let trending = [];
    try {
      const t = await api("/api/trending?limit=20");
      trending = ((t && t.items) || []).map((i) => i.content);
      if (trending.length === 0) trending = (await api("/api/content?sort=trending&limit=20")).items || [];
    } catch (_) { /* no trending row */ }
    const perCategory = await Promise.all(cats.map((c) =>
      api(`/api/content?${new URLSearchParams({ category: c.name, limit: "20" })}`).then((p) => p.items || []).catch(() => [])));
    if (token !== state.rowsToken) return;
    hero(trending[0]);
    const sections = [];
    if (trending.length) sections.push(row("trending", "Trending now", trending));
    cats.forEach((c, i) => {
      if (perCategory[i].length) sections.push(row(`category:${c.name}`, c.name, perCategory[i], routePath({ view: "category", category: c.name })));
    });
    $("rows").replaceChildren(...sections);
  }

  // Rows that appear when the API has them (watch history and recommendations
  // arrive with later issues; until then these endpoints are absent).
  async function loadRows() {
    const rows = [
      ["continue-row", "continue", "/api/history/continue?limit=20"],
      ["recommend-row", "recommend", "/api/recommendations"],
    ];
    for (const [rowId, stripId, path] of rows) {
      const row = $(rowId);
      row.hidden = true;
      if (!state.me) continue;
      try {
        const data = await optional(path);
        const items = (data && (data.items || data)) || [];
        if (!Array.isArray(items) || items.length === 0) continue;
        $(stripId).replaceChildren(...items.map((it) => {
          const content = it.content || it;
          const pos = it.position_ms, dur = it.duration_ms || content.duration_ms;
          return card(content, pos != null && dur ? pos / dur : null);
        }));
        row.hidden = false;
      } catch (_) { /* leave the row hidden */ }
    }
  }

  // ---- account -----------------------------------------------------------

  function renderAccount() {
    const me = state.me;
    $("signin-open").hidden = !!me;
    $("signup-open").hidden = !!me;
    $("me").hidden = !me;
    if (!me) return;
    const name = me.display_name || me.username;
    $("me-name").textContent = name;
    const img = $("avatar");
    if (me.avatar) {
      const small = (me.avatar.variants || []).filter((v) => (v.width || 0) >= 72).sort((a, b) => a.width - b.width)[0];
      img.src = (small || me.avatar).url;
      img.alt = "";
      img.hidden = false;
      $("avatar-initial").hidden = true;
    } else {
      img.hidden = true;
      $("avatar-initial").hidden = false;
      $("avatar-initial").textContent = name.slice(0, 1).toUpperCase();
    }
    $("me-button").setAttribute("aria-label", `Account: ${name}`);
  }

  async function loadMe() {
    try {
      state.me = await api("/api/users/me");
    } catch (e) {
      state.me = null;
      if (e.status !== 401) say(`Could not load your account: ${e.message}`, true);
    }
    renderAccount();
  }

  function formError(form, text) {
    form.querySelector(".form-error").textContent = text || "";
  }

  async function signIn(username, password) {
    const session = await api("/api/sessions", { method: "POST", json: { username, password } });
    state.me = session.user;
    renderAccount();
    loadRows();
  }

  function wireForms() {
    const signinDialog = $("signin-dialog"), signupDialog = $("signup-dialog");
    $("signin-open").addEventListener("click", () => { formError($("signin-form")); signinDialog.showModal(); });
    $("signup-open").addEventListener("click", () => { formError($("signup-form")); signupDialog.showModal(); });
    for (const d of [signinDialog, signupDialog]) {
      d.querySelector(".cancel").addEventListener("click", () => d.close());
    }
    $("signin-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ev.target, data = new FormData(f);
      formError(f);
      try {
        await signIn(data.get("username"), data.get("password"));
        signinDialog.close();
        f.reset();
        say("Signed in.");
      } catch (e) {
        formError(f, e.status === 429 ? "Too many attempts; wait a few minutes." : e.message);
      }
    });
    $("signup-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ev.target, data = new FormData(f);
      formError(f);
      const user = {
        username: String(data.get("username")).trim(),
        email: String(data.get("email")).trim(),
        date_of_birth: data.get("date_of_birth"),
        password: data.get("password"),
      };
      try {
        await api("/api/users", { method: "POST", json: user });
        await signIn(user.username, user.password);
        signupDialog.close();
        f.reset();
        say(`Welcome, ${user.username}!`);
      } catch (e) {
        formError(f, e.code === "username_taken" ? "That username is taken." : e.message);
      }
    });
    $("signout").addEventListener("click", async () => {
      toggleMenu(false);
      try { await api("/api/sessions", { method: "DELETE" }); } catch (_) { /* signed out anyway */ }
      state.me = null;
      renderAccount();
      loadRows();
      say("Signed out.");
    });
    $("me-button").addEventListener("click", () => toggleMenu());
    $("avatar-file").addEventListener("change", async (ev) => {
      const file = ev.target.files && ev.target.files[0];
      ev.target.value = "";
      toggleMenu(false);
      if (!file) return;
      say("Uploading your picture…");
      try {
        state.me = await api("/api/users/me/avatar", { method: "PUT", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
        renderAccount();
        say("Picture updated.");
      } catch (e) {
        say(`Could not update your picture: ${e.message}`, true);
      }
    });
  }

  function toggleMenu(open) {
    const menu = $("me-menu"), button = $("me-button");
    const show = open ?? menu.hidden;
    menu.hidden = !show;
    button.setAttribute("aria-expanded", String(show));
    if (show) menu.querySelector(".button").focus();
  }

  // ---- a title and its player ---------------------------------------------

  const video = () => $("video");

  // ---- adaptive streaming ---------------------------------------------------
  // A title with a ladder comes with an HLS URL besides its progressive file: it
  // plays through hls.js (vendored, /vendor/hls.min.js) where Media Source
  // Extensions exist, else natively (iOS without MSE), else the progressive file.
  // Every request carries the play URL's token: the edge writes it into each
  // reference of the playlists it serves. `window.keyframePlayer` tells how the
  // current title plays (tests and curious viewers read it).
  const player = { mode: "none", hls: null };
  window.keyframePlayer = player;

  function detach() {
    if (player.hls) { player.hls.destroy(); player.hls = null; }
    player.mode = "none";
    $("quality-wrap").hidden = true;
    $("quality").replaceChildren();
  }

  function rungLabel(level) {
    const kbps = Math.round((level.bitrate || 0) / 1000);
    return level.height ? `${level.height}p · ${kbps} kb/s` : `${kbps} kb/s`;
  }

  // The quality menu: Auto (with the rung playing now) and each rung, best first.
  function fillQuality(hls) {
    const q = $("quality");
    const auto = el("option", { value: "-1" }, "Auto");
    const rungs = hls.levels
      .map((level, i) => ({ level, i }))
      .sort((a, b) => (b.level.height - a.level.height) || (b.level.bitrate - a.level.bitrate))
      .map(({ level, i }) => el("option", { value: String(i) }, rungLabel(level)));
    q.replaceChildren(auto, ...rungs);
    q.value = hls.autoLevelEnabled ? "-1" : String(hls.currentLevel);
    $("quality-wrap").hidden = rungs.length < 2;
  }

  // Plays `p` (a /play answer) in `v`: adaptively when it can, progressively when not.
  function attach(v, p) {
    detach();
    const Hls = window.Hls;
    if (p.hls && Hls && Hls.isSupported()) {
      const hls = new Hls({ capLevelToPlayerSize: false, startLevel: -1 });
      player.hls = hls;
      player.mode = "hls.js";
      hls.on(Hls.Events.MANIFEST_PARSED, () => fillQuality(hls));
      hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
        const level = hls.levels[data.level];
        const auto = $("quality").querySelector('option[value="-1"]');
        if (auto && level) auto.textContent = hls.autoLevelEnabled ? `Auto (${rungLabel(level)})` : "Auto";
      });
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (player.hls !== hls) return;
        // A 403 is the edge refusing the token (it ran out: a long pause, a clock
        // far off); every playlist hls.js holds carries that token, so the ladder
        // is loaded again from a fresh /play URL, at the same position. Once, until
        // it plays again (a refusal for another reason would come back).
        const pb = state.playback;
        if (data.response && data.response.code === 403 && !pb.retried && pb.id != null) {
          pb.retried = true;
          renewPlayback(v.currentTime || pb.lastTime, !v.paused);
          return;
        }
        if (!data.fatal) return;
        // The ladder will not play here: the progressive file will.
        detach();
        player.mode = "progressive";
        v.src = p.url;
      });
      hls.loadSource(p.hls);
      hls.attachMedia(v);
      return;
    }
    // Native HLS only where there is no MSE at all (older iOS): Chromium says
    // "maybe" to the type and then fails on byte-range fMP4 playlists.
    const mse = window.MediaSource || window.ManagedMediaSource;
    if (p.hls && !mse && v.canPlayType("application/vnd.apple.mpegurl")) {
      player.mode = "native-hls";
      v.src = p.hls;
      return;
    }
    player.mode = "progressive";
    v.src = p.url; // the edge serves byte ranges: seeking fetches only what it needs
  }

  async function openTitle(id) {
    let detail;
    try {
      detail = await api(`/api/content/${encodeURIComponent(id)}`);
    } catch (e) {
      say(`Could not open the title: ${e.message}`, true);
      if (parseRoute().view === "title") navigate((history.state && history.state.base) || "/", { replace: true });
      return;
    }
    const r = parseRoute();
    if (r.view !== "title" || r.id !== id) return; // navigated elsewhere meanwhile
    state.current = detail;
    document.title = `${detail.title} · Keyframe`;
    $("detail-title").textContent = detail.title;
    $("detail-description").textContent = detail.description || "";
    $("detail-meta").textContent = [detail.kind, duration(detail.duration_ms), (detail.categories || []).join(", ")]
      .filter(Boolean).join(" · ");
    const a = detail.availability || {};
    const avail = $("detail-availability");
    avail.classList.toggle("closed", !a.available);
    avail.textContent = a.available
      ? (a.available_until ? `Available until ${new Date(a.available_until).toLocaleString()}` : "")
      : (a.available_from ? `Available from ${new Date(a.available_from).toLocaleString()}` : "Not available in your region.");
    const poster = $("detail-poster");
    if (detail.poster) { poster.src = detail.poster.url; poster.hidden = false; } else { poster.removeAttribute("src"); poster.hidden = true; }
    const v = video();
    v.pause();
    detach();
    v.removeAttribute("src");
    v.preload = "none";
    v.load();
    v.hidden = true;
    state.playback = { id: null, expiresAt: 0, renewing: false, retried: false, lastTime: 0, startReported: false };
    $("play").disabled = !a.available;
    if (!$("title-dialog").open) $("title-dialog").showModal();
    $("play").focus();
  }

  // Where to resume: the API's position when watch history exists, else this
  // browser's own memory.
  function resumePosition(contentId, fromApi) {
    if (fromApi != null) return fromApi / 1000;
    const saved = Number(localStorage.getItem(`kf:pos:${contentId}`));
    return Number.isFinite(saved) && saved > 0 ? saved : 0;
  }

  async function play() {
    const detail = state.current;
    if (!detail) return;
    if (!state.me) {
      // Playback needs an account unless the server serves public content; ask it.
      try {
        await startPlayback(detail);
      } catch (e) {
        if (e.status === 401) { $("title-dialog").close(); $("signin-dialog").showModal(); say("Sign in to play."); }
        else say(playError(e), true);
      }
      return;
    }
    try {
      await startPlayback(detail);
    } catch (e) {
      if (e.status === 401) { state.me = null; renderAccount(); }
      say(playError(e), true);
    }
  }

  function playError(e) {
    if (e.code === "unavailable_in_region") return "This title is not available in your region.";
    if (e.status === 401) return "Sign in to play.";
    return `Could not play: ${e.message}`;
  }

  async function startPlayback(detail) {
    const p = await api(`/api/content/${encodeURIComponent(detail.id)}/play`);
    const v = video();
    const start = resumePosition(detail.id, p.resume_position_ms ?? detail.resume_position_ms);
    state.playback = { id: detail.id, expiresAt: p.expires_at, renewing: false, retried: false, lastTime: start, startReported: false };
    v.hidden = false;
    $("detail-poster").hidden = true;
    v.preload = "auto"; // a renewed URL loads at once, paused or not
    attach(v, p);
    v.addEventListener("loadedmetadata", () => {
      if (start > 0 && start < v.duration - 5) v.currentTime = start;
    }, { once: true });
    try {
      await v.play();
    } catch (_) { /* autoplay refused: the controls are there */ }
    v.focus();
  }

  // Long films and tokens. A playback URL's token lasts the title's duration plus
  // a margin (the server's play_token_ttl_secs), which covers watching it through;
  // a viewer who pauses longer must not see an error. So before the player needs
  // the network again (resume, seek, or waiting for data) with a token about to
  // run out, the page asks for a fresh URL and swaps it in at the same position;
  // and should the player fail anyway (a clock far off: the video element's error,
  // or a 403 hls.js reports), it renews once and resumes.
  const RENEW_MARGIN_MS = 15000;

  function tokenRunningOut() {
    const pb = state.playback;
    return pb.id != null && pb.expiresAt > 0 && Date.now() > pb.expiresAt - RENEW_MARGIN_MS;
  }

  async function renewPlayback(at, resume) {
    const pb = state.playback, d = state.current, v = video();
    if (pb.renewing || !d || pb.id !== d.id) return;
    pb.renewing = true;
    try {
      const p = await api(`/api/content/${encodeURIComponent(d.id)}/play?renew=true`);
      if (state.playback !== pb || !state.current || state.current.id !== pb.id) return;
      pb.expiresAt = p.expires_at;
      // Where the viewer is now (playing on from the buffer, or a seek meanwhile).
      const pos = v.currentTime > 0 ? v.currentTime : at;
      attach(v, p);
      await new Promise((resolve) => {
        v.addEventListener("loadedmetadata", resolve, { once: true });
        v.addEventListener("error", resolve, { once: true });
      });
      if (pos > 0 && Number.isFinite(v.duration)) v.currentTime = Math.min(pos, v.duration);
      if (resume) await v.play().catch(() => {});
    } catch (e) {
      say(playError(e), true);
    } finally {
      pb.renewing = false;
    }
  }

  // Watch history: called with the viewer's position as they watch (every 10 s
  // while playing, and on pause, seek and end). Signed-in viewers' events go to
  // POST /api/history, numbered within a playback session so that a retry is
  // harmless; the position is also kept in this browser for anonymous viewers.
  const watchLog = { contentId: null, session: null, seq: 0, queue: [], sending: false };

  function newSession() {
    const a = new Uint8Array(12);
    (window.crypto || {}).getRandomValues ? window.crypto.getRandomValues(a) : a.forEach((_, i) => { a[i] = Math.random() * 256; });
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function flushHistory() {
    if (watchLog.sending || watchLog.queue.length === 0 || !state.me) return;
    watchLog.sending = true;
    const events = watchLog.queue.splice(0, 100);
    try {
      await api("/api/history", { method: "POST", json: { events } });
    } catch (e) {
      // Keep them for the next report unless the server refused them for good.
      if (!e.status || e.status >= 500) watchLog.queue.unshift(...events);
    } finally {
      watchLog.sending = false;
    }
  }

  function reportProgress(contentId, kind, positionMs, durationMs) {
    try {
      if (kind === "ended") localStorage.removeItem(`kf:pos:${contentId}`);
      else localStorage.setItem(`kf:pos:${contentId}`, String(positionMs / 1000));
    } catch (_) { /* storage may be off */ }
    const apiKind = kind === "ended" ? "complete" : kind;
    const event = { content_id: contentId, kind: apiKind, position_ms: Math.max(0, positionMs), duration_ms: durationMs, at: Date.now() };
    if (typeof window.keyframeOnProgress === "function") window.keyframeOnProgress(event);
    if (!state.me || !durationMs) return;
    if (watchLog.contentId !== contentId || apiKind === "start") {
      watchLog.contentId = contentId;
      watchLog.session = newSession();
      watchLog.seq = 0;
    }
    watchLog.queue.push({ ...event, session_id: watchLog.session, seq: watchLog.seq++ });
    if (watchLog.queue.length > 500) watchLog.queue.splice(0, watchLog.queue.length - 500);
    flushHistory();
  }

  function wirePlayer() {
    const v = video();
    let last = 0;
    const report = (kind) => {
      const d = state.current;
      if (!d || !v.src) return;
      const dur = Number.isFinite(v.duration) ? Math.round(v.duration * 1000) : null;
      reportProgress(d.id, kind, Math.round(v.currentTime * 1000), dur);
    };
    v.addEventListener("playing", () => {
      const d = state.current, pb = state.playback;
      pb.retried = false;
      if (d && pb.id === d.id && !pb.startReported) { pb.startReported = true; report("start"); }
    });
    v.addEventListener("play", () => {
      if (tokenRunningOut()) renewPlayback(v.currentTime, true);
    });
    v.addEventListener("seeking", () => {
      if (!state.playback.renewing && tokenRunningOut()) renewPlayback(v.currentTime, !v.paused);
    });
    // A range the edge refused can leave the player waiting rather than failed.
    v.addEventListener("waiting", () => {
      if (!state.playback.renewing && tokenRunningOut()) renewPlayback(v.currentTime, true);
    });
    v.addEventListener("timeupdate", () => {
      if (!state.playback.renewing && v.currentTime > 0) state.playback.lastTime = v.currentTime;
      if (v.currentTime - last >= 10 || v.currentTime < last) { last = v.currentTime; report("progress"); }
    });
    v.addEventListener("pause", () => { if (!v.ended) report("pause"); });
    v.addEventListener("seeked", () => report("seek"));
    v.addEventListener("ended", () => report("ended"));
    v.addEventListener("error", () => {
      const pb = state.playback;
      if (!v.src || pb.renewing) return;
      if (!pb.retried && state.current && pb.id === state.current.id) {
        pb.retried = true; // once: the edge may have refused an expired token
        renewPlayback(pb.lastTime, true);
        return;
      }
      say("Playback failed. Press Play to try again.", true);
    });
    $("play").addEventListener("click", play);
    $("quality").addEventListener("change", () => {
      // -1 is Auto: hls.js picks the rung by throughput again.
      if (player.hls) player.hls.currentLevel = Number($("quality").value);
    });
    $("detail-close").addEventListener("click", () => $("title-dialog").close());
    $("title-dialog").addEventListener("close", () => {
      report("pause");
      v.pause();
      detach();
      state.current = null;
      state.playback = { id: null, expiresAt: 0, renewing: false, retried: false, lastTime: 0, startReported: false };
      // Closed by the viewer (not by history): go back to the view underneath.
      if (parseRoute().view === "title") {
        if (history.state && history.state.pushed) history.back();
        else navigate((history.state && history.state.base) || "/");
      }
    });
    $("title-dialog").addEventListener("keydown", (ev) => {
      if (v.hidden || ev.target.closest("input, select, textarea")) return;
      const key = ev.key;
      if (key === " " || key === "k") {
        if (ev.target.tagName === "BUTTON" && key === " ") return; // the button's own action
        ev.preventDefault();
        if (v.paused) v.play(); else v.pause();
      } else if (key === "ArrowRight" || key === "ArrowLeft") {
        ev.preventDefault();
        const step = key === "ArrowRight" ? 10 : -10;
        v.currentTime = Math.max(0, Math.min((v.duration || Infinity), v.currentTime + step));
      } else if (key === "f") {
        ev.preventDefault();
        if (document.fullscreenElement) document.exitFullscreen(); else v.requestFullscreen?.();
      }
    });
  }

  // ---- search box and keys -----------------------------------------------

  function wireSearch() {
    let timer = 0;
    // Typing refines one search entry in history (replace); starting a search
    // from another view pushes one, so Back returns to that view.
    const search = () => {
      const q = $("search").value.trim();
      const cur = parseRoute();
      if (!q) {
        if (cur.view === "search") navigate("/", { replace: true });
        return;
      }
      navigate(routePath({ view: "search", q, sort: cur.view === "search" ? cur.sort : "" }), { replace: cur.view === "search" });
    };
    $("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 300); });
    $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); clearTimeout(timer); search(); });
    $("category").addEventListener("change", () => {
      const c = $("category").value;
      navigate(c ? routePath({ view: "category", category: c }) : "/");
    });
    $("sort").addEventListener("change", () => {
      const cur = parseRoute();
      const view = cur.view === "title" ? parseRoute(new URL((history.state && history.state.base) || "/", window.location.origin)) : cur;
      navigate(routePath({ ...view, sort: $("sort").value }), { replace: true });
    });
    $("more").addEventListener("click", () => loadList(false));
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && !ev.target.closest("input, select, textarea") && !document.querySelector("dialog[open]")) {
        ev.preventDefault();
        $("search").focus();
      }
      if (ev.key === "Escape" && !$("me-menu").hidden) { toggleMenu(false); $("me-button").focus(); }
    });
    document.addEventListener("click", (ev) => {
      if (!$("me-menu").hidden && !ev.target.closest("#me")) toggleMenu(false);
    });
  }

  document.addEventListener("DOMContentLoaded", async () => {
    wireForms();
    wirePlayer();
    wireSearch();
    state.categoriesLoading = loadCategories();
    window.addEventListener("popstate", route);
    route();
    await loadMe();
    loadRows();
  });

  // For tests and the console.
  window.keyframe = { api, openTitle, goTitle, navigate, reportProgress, state };
})();
