// Attend and Excite: the token table in the script's accordion (txt2img and img2img).
//
// The Python side (ae_webui/token_table.py) renders one static <div class="ae-token-table"> per tab whose
// data-ae-* attributes name that tab's parts by elem id: a hidden button whose gradio event reads the prompt
// (promptText), tokenizes it with the loaded model and hands the JSON payload back (render); the Subjects
// textbox (data-ae-subjects) and the Groups textbox (data-ae-groups). Clicking a token adds or removes its Subjects
// item; shift-clicking it (or clicking in groups mode, the head's toggle) adds it to the current group (the last
// group of Groups; "New group" starts one) or removes it from its group. Each change fires the textbox's own
// input event (updateInput) so gradio sees it. Only one global: window.attendExcite.
(function() {
    "use strict";

    if (window.attendExcite) {
        return; // loaded twice (e.g. a second copy of the extension): keep the first
    }

    var DEBOUNCE_MS = 500;
    var tabs = {}; // tab name -> {el, ids, payload, refs, requested, rendered, subjects, groups, groupMode, timer}
    var seen = new WeakSet(); // DOM nodes already set up: init is idempotent across UI updates

    function app() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function byId(id) {
        return id ? app().querySelector("#" + CSS.escape(id)) : null;
    }

    function textarea(id) {
        var el = byId(id);
        return el ? el.querySelector("textarea") : null;
    }

    function promptBox(tab) {
        return textarea(tab + "_prompt"); // the WebUI's prompt box: #txt2img_prompt / #img2img_prompt
    }

    function subjectsBox(tab) {
        var st = tabs[tab];
        return st ? textarea(st.ids.subjects) : null;
    }

    function groupsBox(tab) {
        var st = tabs[tab];
        return st && st.ids.groups ? textarea(st.ids.groups) : null;
    }

    function fireInput(el) {
        if (typeof updateInput === "function") {
            updateInput(el);
        } else {
            el.dispatchEvent(new Event("input", {bubbles: true}));
        }
    }

    // --- Subjects spec, as ae_lib.tokens.split_spec / map_subjects read it ---------------------------------

    function rawItems(spec) {
        return (spec || "").split(/[,\s]+/).filter(function(s) {
            return strip(s).length > 0; // as split_spec: "()" alone is no item
        });
    }

    function strip(item) {
        return item.replace(/[()[\]{}]/g, "").replace(/:\s*-?\d*\.?\d+\s*$/, "").trim().toLowerCase();
    }

    // The column an item selects in this payload, or null (not in the prompt, or not selectable).
    function resolve(st, item) {
        var text = strip(item);
        if (/^\d+$/.test(text)) {
            var col = String(Number(text)); // "007" is column 7, as int() reads it
            return Object.prototype.hasOwnProperty.call(st.selectable, col) ? Number(col) : null;
        }
        var m = /^(.+?)#(\d+)$/.exec(text);
        var key = m && Number(m[2]) === 1 ? m[1] : text; // "frog#1" is "frog"
        return Object.prototype.hasOwnProperty.call(st.refs, key) ? st.refs[key] : null;
    }

    // --- Groups spec, as ae_lib.targets.split_groups reads it: ';' between groups, each a subject spec --------

    // Each group's items; a trailing ";" keeps an empty last group: the group the next word starts.
    function parseGroups(spec) {
        var parts = (spec || "").split(";");
        var groups = [];
        parts.forEach(function(part, i) {
            var items = rawItems(part);
            if (items.length || (i === parts.length - 1 && i > 0)) {
                groups.push(items);
            }
        });
        return groups;
    }

    function formatGroups(groups) {
        var kept = groups.filter(function(items, i) {
            return items.length || i === groups.length - 1; // an emptied group goes, the open last one stays
        });
        return kept.map(function(items) {
            return items.join(" ");
        }).join("; "); // an open last group ends the text with "; "
    }

    // --- tokenizing round trip -----------------------------------------------------------------------------

    function currentPrompt(tab) {
        var box = promptBox(tab);
        return box ? box.value : "";
    }

    // Read by the hidden button's gradio event (_js): the prompt Python tokenizes; remembered as requested.
    function promptText(tab) {
        var text = currentPrompt(tab);
        if (tabs[tab]) {
            tabs[tab].requested = text;
        }
        return text;
    }

    function requestNow(tab) {
        var st = tabs[tab];
        if (!st) {
            return;
        }
        clearTimeout(st.timer);
        var button = byId(st.ids.button);
        if (button) {
            button.click(); // gradio runs _js (promptText), then Python, then render
        }
    }

    function visible(st) {
        return st.el.getClientRects().length > 0; // false inside a closed accordion or an inactive tab
    }

    // Debounced request after prompt edits. A hidden table only goes stale: it is filled when it shows, so a
    // closed accordion never asks the model anything (which could load it).
    function schedule(tab) {
        var st = tabs[tab];
        if (!st || !visible(st)) {
            return;
        }
        clearTimeout(st.timer);
        st.timer = setTimeout(function() {
            requestNow(tab);
        }, DEBOUNCE_MS);
    }

    function onVisibility(entries) {
        entries.forEach(function(entry) {
            var tab = entry.target.dataset.aeTab;
            var st = tabs[tab];
            if (entry.isIntersecting && st && st.el === entry.target && st.rendered !== currentPrompt(tab)) {
                requestNow(tab);
            }
        });
    }

    var shown = typeof IntersectionObserver === "function" ? new IntersectionObserver(onVisibility) : null;

    function render(tab, json) {
        var st = tabs[tab];
        if (!st || !json) {
            return;
        }
        var payload;
        try {
            payload = JSON.parse(json);
        } catch (e) {
            console.error("attend-and-excite: bad token table payload", e);
            return;
        }
        st.payload = payload;
        st.rendered = payload.prompt;
        indexRefs(st, payload);
        var focused = focusedColumn(st.el);
        st.el.replaceChildren(head(st, payload), body(payload));
        showMode(st);
        refocus(st.el, focused);
        highlight(tab);
        if (currentPrompt(tab) !== payload.prompt) {
            schedule(tab); // the prompt changed while this one was on its way (gradio drops clicks meanwhile)
        }
    }

    function indexRefs(st, payload) {
        st.refs = {};
        st.selectable = {};
        payload.items.forEach(function(item) {
            if (item.r !== undefined) {
                st.refs[item.r.toLowerCase()] = item.c;
                st.selectable[String(item.c)] = true;
            }
        });
    }

    // --- DOM -----------------------------------------------------------------------------------------------

    function node(tag, cls, text) {
        var el = document.createElement(tag);
        if (cls) {
            el.className = cls;
        }
        if (text !== undefined) {
            el.textContent = text; // never innerHTML: token text is user input
        }
        return el;
    }

    function head(st, payload) {
        var el = node("div", "ae-tt-head");
        if (payload.error) {
            el.appendChild(node("span", "ae-tt-error", payload.error));
            return el;
        }
        var chunks = payload.chunks === 1 ? "1 chunk" : payload.chunks + " chunks";
        el.appendChild(node("span", "ae-tt-summary", payload.columns + " columns, " + chunks));
        el.appendChild(node("span", "ae-tt-hint", hintText(st)));
        if (st.ids.groups) {
            el.appendChild(headButton("ae-tt-groupmode", "Groups mode", "Clicks build groups (as shift-clicks do)"));
            el.appendChild(headButton("ae-tt-newgroup", "New group", "The next word starts a new group in Groups"));
        }
        el.appendChild(node("span", "ae-tt-missing"));
        return el;
    }

    function hintText(st) {
        if (!st.ids.groups) {
            return "Click a token to add or remove it as a subject.";
        }
        return st.groupMode ? "Click a token to add it to the current group, or remove it from its group." :
            "Click a token to add or remove it as a subject; shift-click adds it to the current group.";
    }

    function headButton(cls, text, title) {
        var el = node("button", "ae-tt-btn " + cls, text);
        el.type = "button";
        el.title = title;
        return el;
    }

    function showMode(st) {
        var toggle = st.el.querySelector(".ae-tt-groupmode");
        if (toggle) {
            toggle.setAttribute("aria-pressed", st.groupMode ? "true" : "false");
            toggle.classList.toggle("ae-on", st.groupMode);
        }
        var hint = st.el.querySelector(".ae-tt-hint");
        if (hint) {
            hint.textContent = hintText(st);
        }
    }

    function body(payload) {
        var el = node("div", "ae-tt-tokens");
        el.setAttribute("role", "group");
        el.setAttribute("aria-label", "Prompt tokens by column");
        var chunk = null;
        var joinNext = false;
        payload.items.forEach(function(item) {
            if (item.k === "start" || chunk === null) {
                chunk = el.appendChild(node("div", "ae-tt-chunk"));
            }
            var tok = item.r !== undefined ? tokenButton(item) : fixedToken(item);
            if (joinNext) {
                tok.classList.add("ae-join"); // continues the previous piece's word
            }
            joinNext = item.r !== undefined && item.w === false;
            chunk.appendChild(tok);
        });
        return el;
    }

    function tokenButton(item) {
        var el = node("button", "ae-tok ae-kind-" + item.k);
        el.type = "button";
        el.dataset.col = String(item.c);
        el.dataset.ref = item.r;
        el.setAttribute("aria-pressed", "false");
        el.title = "column " + item.c + ": adds \u201c" + item.r + "\u201d to Subjects (shift-click: to the current group)";
        el.appendChild(node("span", "ae-tok-text", item.t || "\u00b7"));
        el.appendChild(node("span", "ae-tok-col", String(item.c)));
        return el;
    }

    var FIXED = {start: "start", end: "end", pad: "padding"};

    function fixedToken(item) {
        var el = node("span", "ae-tok ae-fixed ae-kind-" + item.k);
        var last = item.c + (item.n || 1) - 1;
        var cols = last > item.c ? item.c + "\u2013" + last : String(item.c);
        var label = item.k === "pad" ? "pad \u00d7" + item.n : (item.t || FIXED[item.k] || item.k);
        el.title = "column " + cols + ": " + (FIXED[item.k] || item.k) + " (not selectable)";
        el.appendChild(node("span", "ae-tok-text", label));
        el.appendChild(node("span", "ae-tok-col", cols));
        return el;
    }

    function focusedColumn(el) {
        var active = document.activeElement;
        return active && el.contains(active) && active.dataset ? active.dataset.col : null;
    }

    function refocus(el, col) {
        if (col !== null && col !== undefined) {
            var again = el.querySelector('button.ae-tok[data-col="' + col + '"]');
            if (again) {
                again.focus();
            }
        }
    }

    // --- selection -----------------------------------------------------------------------------------------

    function selectedColumns(st, spec) {
        var cols = new Set();
        var missing = [];
        rawItems(spec).forEach(function(item) {
            var col = resolve(st, item);
            if (col === null) {
                missing.push(item);
            } else {
                cols.add(col);
            }
        });
        return {cols: cols, missing: missing};
    }

    // {column: its group's number (from 1)} and the group items not in this prompt.
    function groupedColumns(st, spec) {
        var cols = {};
        var missing = [];
        parseGroups(spec).forEach(function(items, g) {
            items.forEach(function(item) {
                var col = resolve(st, item);
                if (col === null) {
                    missing.push(item);
                } else {
                    cols[col] = g + 1;
                }
            });
        });
        return {cols: cols, missing: missing};
    }

    // `value`: the Subjects value (undefined: read the box); `groupsValue`: the Groups value, likewise.
    function highlight(tab, value, groupsValue) {
        var st = tabs[tab];
        if (!st || !st.payload) {
            return;
        }
        var box = subjectsBox(tab);
        var spec = value !== undefined ? value : (box ? box.value : "");
        var gbox = groupsBox(tab);
        var gspec = groupsValue !== undefined ? groupsValue : (gbox ? gbox.value : "");
        st.subjects = spec;
        st.groups = gspec;
        var sel = selectedColumns(st, spec);
        var grouped = groupedColumns(st, gspec);
        st.el.querySelectorAll("button.ae-tok").forEach(function(b) {
            var on = sel.cols.has(Number(b.dataset.col));
            b.classList.toggle("ae-selected", on);
            b.setAttribute("aria-pressed", on ? "true" : "false");
            var group = grouped.cols[b.dataset.col];
            b.classList.toggle("ae-grouped", group !== undefined);
            if (group !== undefined) {
                b.dataset.group = String(group);
            } else {
                delete b.dataset.group;
            }
        });
        var missing = st.el.querySelector(".ae-tt-missing");
        if (missing) {
            var all = sel.missing.concat(grouped.missing);
            missing.textContent = all.length ? "Not in this prompt: " + all.join(", ") : "";
        }
    }

    function toggle(tab, col, ref) {
        var st = tabs[tab];
        var box = subjectsBox(tab);
        if (!st || !box) {
            return;
        }
        var items = rawItems(box.value);
        var selected = items.some(function(item) {
            return resolve(st, item) === col;
        });
        if (selected) {
            items = items.filter(function(item) {
                return resolve(st, item) !== col; // also drops "5" when "frog" is column 5
            });
        } else {
            items.push(ref);
        }
        box.value = items.join(", ");
        fireInput(box);
        highlight(tab, box.value);
    }

    // Groups mode / shift-click: the word leaves its group if it is in one, else joins the current (last) group.
    function toggleGroup(tab, col, ref) {
        var st = tabs[tab];
        var box = groupsBox(tab);
        if (!st || !box) {
            return;
        }
        var groups = parseGroups(box.value);
        var found = false;
        groups = groups.map(function(items) {
            return items.filter(function(item) {
                var hit = resolve(st, item) === col;
                found = found || hit;
                return !hit;
            });
        });
        if (!found) {
            if (!groups.length) {
                groups.push([]);
            }
            groups[groups.length - 1].push(ref);
        }
        setGroups(tab, box, formatGroups(groups));
    }

    function newGroup(tab) {
        var box = groupsBox(tab);
        if (!box) {
            return;
        }
        var groups = parseGroups(box.value);
        if (groups.length && groups[groups.length - 1].length) {
            groups.push([]);
            setGroups(tab, box, formatGroups(groups));
        }
    }

    function setGroups(tab, box, value) {
        box.value = value;
        fireInput(box);
        highlight(tab, undefined, box.value);
    }

    function onTableClick(tab, e) {
        var st = tabs[tab];
        if (e.target.closest(".ae-tt-groupmode")) {
            st.groupMode = !st.groupMode;
            showMode(st);
            return;
        }
        if (e.target.closest(".ae-tt-newgroup")) {
            newGroup(tab);
            return;
        }
        var b = e.target.closest("button.ae-tok");
        if (b && this.contains(b)) {
            if ((e.shiftKey || st.groupMode) && groupsBox(tab)) {
                toggleGroup(tab, Number(b.dataset.col), b.dataset.ref);
            } else {
                toggle(tab, Number(b.dataset.col), b.dataset.ref);
            }
        }
    }

    // Left/Right (and Home/End) move between tokens; Enter and Space are the buttons' own.
    function onTableKey(e) {
        var keys = {ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity};
        var b = e.target.closest ? e.target.closest("button.ae-tok") : null;
        if (!b || !(e.key in keys)) {
            return;
        }
        var all = Array.prototype.slice.call(this.querySelectorAll("button.ae-tok"));
        var i = Math.max(0, Math.min(all.length - 1, all.indexOf(b) + keys[e.key]));
        all[i].focus();
        e.preventDefault();
    }

    // --- set-up --------------------------------------------------------------------------------------------

    function listen(el, type, fn) {
        if (el && !seen.has(el)) {
            seen.add(el);
            el.addEventListener(type, fn);
        }
    }

    function setup(el) {
        var tab = el.dataset.aeTab;
        var ids = {
            button: el.dataset.aeButton, subjects: el.dataset.aeSubjects, groups: el.dataset.aeGroups,
            refresh: el.dataset.aeRefresh,
        };
        var old = tabs[tab] || {};
        tabs[tab] = {
            el: el, ids: ids, payload: null, refs: {}, selectable: {}, requested: null, rendered: null, timer: old.timer,
            groupMode: Boolean(old.groupMode),
        };
        el.addEventListener("click", onTableClick.bind(el, tab));
        el.addEventListener("keydown", onTableKey);
        var refresh = byId(ids.refresh);
        if (refresh) {
            refresh.title = "Tokenize the prompt again with the loaded model";
        }
        if (shown) {
            shown.observe(el); // also reports the current state: a visible table is filled at once
        } else {
            schedule(tab);
        }
    }

    // Called on load and after every UI update: new tables, new boxes, and prompt/subjects changed by code
    // (paste, "send to", styles) that fired no input event. Cheap when nothing changed.
    function scan() {
        app().querySelectorAll(".ae-token-table").forEach(function(el) {
            if (!seen.has(el)) {
                seen.add(el);
                setup(el);
            }
        });
        Object.keys(tabs).forEach(function(tab) {
            var st = tabs[tab];
            listen(promptBox(tab), "input", function() {
                schedule(tab);
            });
            listen(subjectsBox(tab), "input", function() {
                highlight(tab);
            });
            listen(groupsBox(tab), "input", function() {
                highlight(tab);
            });
            if (promptBox(tab) && st.requested !== null && currentPrompt(tab) !== st.requested) {
                schedule(tab);
            }
            var subjects = subjectsBox(tab);
            var groups = groupsBox(tab);
            if (st.payload && ((subjects && subjects.value !== st.subjects) || (groups && groups.value !== st.groups))) {
                highlight(tab);
            }
        });
    }

    window.attendExcite = {
        promptText: promptText,
        render: render,
        refresh: requestNow,
        subjectsChanged: function(tab, value) {
            highlight(tab, value);
        },
        groupsChanged: function(tab, value) {
            highlight(tab, undefined, value);
        },
        scan: scan,
    };

    if (typeof onUiLoaded === "function") {
        onUiLoaded(scan);
    }
    if (typeof onAfterUiUpdate === "function") {
        onAfterUiUpdate(scan);
    }
})();
