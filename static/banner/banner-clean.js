/* consent-gateway: removes what refused vendors left in the browser. The gateway adds this script only for
 * a visitor who refused something; it runs on every such page, so a withdrawal or a narrowing (both reload)
 * and a refusal after a policy change (next page) leave no cookie set by a script and no storage key behind.
 * Patterns come from the catalog (banner-data.js, vendors[].store) and from hand-marked tags
 * (data-cg-cookies="name1 prefix_*"): exact names, or prefixes when they end with "*". */
(function (w, d) {
  'use strict';
  var cfg = d.getElementById('cg-config'), B = w.cgBannerData;
  if (!cfg || !B) return;
  var st = JSON.parse(cfg.textContent).state, required = {};
  B.categories.forEach(function (c) { if (c.required) required[c.id] = 1; });
  // As in banner.js: granted by name, or its category granted and not refused by name.
  function allowed(vid, cat) {
    var v = vid ? st.vendors[vid] : null;
    return v != null ? v : !!(required[cat] || st.choices[cat]);
  }
  function clean() {
    var patterns = [];
    B.vendors.forEach(function (v) { if (!allowed(v.id, v.category)) patterns = patterns.concat(v.store || []); });
    [].forEach.call(d.querySelectorAll('[data-cg-cookies]'), function (e) {
      if (!allowed(e.getAttribute('data-cg-vendor'), e.getAttribute('data-category'))) {
        patterns = patterns.concat(e.getAttribute('data-cg-cookies').split(/\s+/));
      }
    });
    function hit(name) {
      return patterns.some(function (p) {
        return p && (p.slice(-1) === '*' ? name.indexOf(p.slice(0, -1)) === 0 : name === p);
      });
    }
    [w.localStorage, w.sessionStorage].forEach(function (s) {
      try {
        Object.keys(s).forEach(function (k) { if (hit(k)) s.removeItem(k); });
      } catch (x) { /* storage disabled */ }
    });
    // A script may have set its cookie on the host or on any parent domain: expire each form.
    var labels = location.hostname.split('.');
    d.cookie.split(';').forEach(function (c) {
      var name = c.split('=')[0].trim();
      if (!name || !hit(name)) return;
      d.cookie = name + '=; Max-Age=0; Path=/';
      for (var i = 0; i < labels.length - 1; i++) {
        d.cookie = name + '=; Max-Age=0; Path=/; Domain=' + labels.slice(i).join('.');
      }
    });
  }
  clean();
  d.cookie = 'cg_clean=; Max-Age=0; Path=/'; // set by a withdrawal for this one page
  d.addEventListener('DOMContentLoaded', clean);
  // A later choice on this page (no reload when it only widens, or a first refusal): clean with it.
  d.addEventListener('cg:consent', function (e) { st = e.detail; clean(); });
})(window, document);
