/* consent-gateway: the visitor's state for a page every visitor shares ([gateway] html_cache = "shared").
 * Such a page carries no state, so that a CDN or page cache may serve it to anyone. The gateway keeps a
 * readable copy of the visitor's state in a cookie next to the signed one; this script runs before banner.js
 * and writes that state into #cg-config, where the banner reads it. The server never trusts the copy: it judges
 * every request by the signed cookie. No cookie: the visitor has not chosen (the banner asks). */
(function (w, d) {
  'use strict';
  var el = d.getElementById('cg-config'), B = w.cgBannerData;
  if (!el || !B) return;
  var C = JSON.parse(el.textContent), s = null;
  var m = d.cookie.match(new RegExp('(?:^|; )' + C.shared + '=([^;]*)'));
  try {
    s = m && JSON.parse(decodeURIComponent(m[1]));
  } catch (e) {
    s = null; // unreadable: the visitor is asked again, and the next page the gateway sees rewrites it
  }
  C.state = s && s.state || { explicit: false, choices: {}, vendors: {} };
  C.consent_id = s && s.id || null;
  C.gpc = !!(s ? s.gpc : navigator.globalPrivacyControl);
  // The visitor's own language among those the site offers (what Accept-Language gives a private page).
  if (C.lv) {
    C.lv = false;
    (navigator.languages || [navigator.language]).some(function (tag) {
      tag = String(tag).toLowerCase();
      var base = tag.split('-')[0];
      var found = Object.keys(B.i18n).filter(function (l) { return l.toLowerCase() === tag; })[0] ||
        Object.keys(B.i18n).filter(function (l) { return l.toLowerCase() === base; })[0];
      if (found) C.lang = found;
      return (C.lv = !!found);
    });
  }
  el.textContent = JSON.stringify(C);
})(window, document);
