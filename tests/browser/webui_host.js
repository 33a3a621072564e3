// The test page's stand-in for the WebUI's script.js (v1.10.1) helpers that extension scripts call, written for
// this test: gradioApp(), onUiLoaded(), onUiUpdate(), onAfterUiUpdate(), updateInput(), inputAccordionChecked().
// Like the WebUI: callbacks run from one MutationObserver on the gradio app; "UI loaded" is the first mutation
// after #txt2img_prompt exists; "after UI update" is 200 ms after the last mutation.

function gradioApp() {
    var app = document.getElementsByTagName("gradio-app")[0];
    if (!app) {
        return document;
    }
    if (!app.getElementById) {
        app.getElementById = function(id) {
            return document.getElementById(id);
        };
    }
    return app.shadowRoot || app;
}

var hostCallbacks = {loaded: [], update: [], afterUpdate: []};
var hostUiLoaded = false;
var hostAfterUpdateTimer = null;

function onUiLoaded(callback) {
    hostCallbacks.loaded.push(callback);
}

function onUiUpdate(callback) {
    hostCallbacks.update.push(callback);
}

function onAfterUiUpdate(callback) {
    hostCallbacks.afterUpdate.push(callback);
}

function hostRun(list, arg) {
    list.forEach(function(callback) {
        try {
            callback(arg);
        } catch (e) {
            console.error("error running callback", callback, ":", e);
        }
    });
}

document.addEventListener("DOMContentLoaded", function() {
    new MutationObserver(function(mutations) {
        if (!hostUiLoaded && gradioApp().querySelector("#txt2img_prompt")) {
            hostUiLoaded = true;
            hostRun(hostCallbacks.loaded);
        }
        hostRun(hostCallbacks.update, mutations);
        clearTimeout(hostAfterUpdateTimer);
        hostAfterUpdateTimer = setTimeout(function() {
            hostRun(hostCallbacks.afterUpdate);
        }, 200);
    }).observe(gradioApp(), {childList: true, subtree: true});
});

// Fire the element's input event with the element as target, as gradio's textboxes listen for it.
function updateInput(target) {
    var event = new Event("input", {bubbles: true});
    Object.defineProperty(event, "target", {value: target});
    target.dispatchEvent(event);
}

// InputAccordion's checkbox -> accordion open state (the WebUI's inputAccordion.js does more: the reverse too).
function inputAccordionChecked(id, checked) {
    var accordion = gradioApp().getElementById(id);
    var header = accordion && accordion.querySelector(".label-wrap");
    if (header && header.classList.contains("open") !== Boolean(checked)) {
        header.click();
    }
}
