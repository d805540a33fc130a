// medactive labelling page: the active time spent on each item (issue 13, annotation cost).
// Pure: fed with events and their times (milliseconds of any monotonic clock), no DOM, no clock
// of its own, so a test can drive it with a simulated clock. app.js feeds it the page's events.
//
// Rule: time counts while the page is visible and an item is on screen, up to `idleMs` after
// the last input (key, pointer, wheel, touch); showing an item and the page becoming visible
// again count as inputs. Time on one item adds up over several visits until `take` resets it.
"use strict";

(function (root) {
  function createActiveTimer({ idleMs, visible = true }) {
    if (!(idleMs > 0)) throw new Error("idleMs must be positive");
    const totals = new Map();  // item key -> active milliseconds so far
    let current = null;        // key of the item on screen
    let shown = visible;
    let lastInput = -Infinity; // time of the last input
    let countedTo = -Infinity; // time up to which the current item's time is counted

    // count the current item's active time from countedTo up to t
    function advance(t) {
      if (current !== null && shown) {
        const end = Math.min(t, lastInput + idleMs);
        if (end > countedTo) totals.set(current, (totals.get(current) || 0) + end - countedTo);
      }
      countedTo = Math.max(countedTo, t);
    }

    return {
      // an item appears on screen (null: none)
      show(key, t) {
        advance(t);
        current = key;
        lastInput = t;
        countedTo = t;
      },
      input(t) {
        advance(t);
        lastInput = t;
      },
      // the page became visible (true) or hidden (false)
      visibility(isVisible, t) {
        advance(t);
        shown = isVisible;
        if (isVisible) {
          lastInput = t;
          countedTo = t;
        }
      },
      // the active milliseconds of item `key` up to t (whole ms)
      activeMs(key, t) {
        advance(t);
        return Math.round(totals.get(key) || 0);
      },
      // after a saved label: the item's time starts again from zero
      take(key, t) {
        advance(t);
        totals.delete(key);
      },
    };
  }

  root.medactiveTiming = { createActiveTimer };
  if (typeof module !== "undefined") module.exports = root.medactiveTiming;
})(typeof window !== "undefined" ? window : globalThis);
