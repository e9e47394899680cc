/* consent-gateway: reports the NAMES of the cookies and storage keys present in this browser — never a
 * value — so the site's inventory and its cookie declaration show what scripts really write (a server sees
 * only Set-Cookie). The gateway adds this script only after the visitor made a choice, and not again for a
 * day once a report went through (the answer sets cg_inv). Same origin, names only, one small POST. */
(function (w, d) {
  'use strict';
  var me = d.currentScript, url = me && me.src.replace(/\.js(\?.*)?$/, '');
  var MAX_NAMES = 200, MAX_CHARS = 256, DELAY_MS = 2000;
  if (!url || !w.fetch) return;
  function kept(names) {
    var seen = {};
    return names.filter(function (n) {
      if (!n || n.length > MAX_CHARS || seen[n]) return false;
      seen[n] = 1;
      return true;
    }).slice(0, MAX_NAMES);
  }
  function storageKeys(area) {
    try { return Object.keys(w[area]); } catch (x) { return []; } // storage disabled
  }
  function report() {
    var body = {
      cookie: kept(d.cookie.split(';').map(function (c) { return c.split('=')[0].trim(); })),
      localStorage: kept(storageKeys('localStorage')),
      sessionStorage: kept(storageKeys('sessionStorage'))
    };
    w.fetch(url, {
      method: 'POST', credentials: 'same-origin', keepalive: true,
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
    }).catch(function () { /* tried again on a later page */ });
  }
  // after the page's scripts, and the trackers the visitor granted, had time to write
  function later() { w.setTimeout(report, DELAY_MS); }
  if (d.readyState === 'complete') later(); else w.addEventListener('load', later);
})(window, document);
