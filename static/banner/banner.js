/* consent-gateway visitor banner. Vanilla JS, no third-party request, no eval, no inline handler.
 * Loaded synchronously at the top of <head>, after the visitor's state (#cg-config) and the site's texts and
 * vendors (banner-data.js, window.cgBannerData): the Consent Mode
 * default below runs before any Google tag; the UI is built once the DOM is parsed.
 * Public: window.consentGateway.{show, showPreferences, acceptedCategory, acceptedVendor}. */
(function (w, d) {
  'use strict';
  var cfgEl = d.getElementById('cg-config');
  if (!cfgEl || !w.cgBannerData || w.consentGateway) return;
  // The site-wide part (texts, vendors) comes cached from banner-data.js; the page carries the visitor's state.
  var C = Object.assign({}, w.cgBannerData, JSON.parse(cfgEl.textContent));
  var me = d.currentScript, NONCE = me && me.nonce;
  var CATS = C.categories, VENDORS = C.vendors, CM = C.consent_mode;
  var REQUIRED = {};
  CATS.forEach(function (c) { if (c.required) REQUIRED[c.id] = 1; });
  var state = C.state;
  var consentId = C.consent_id, receiptUrl = C.receipt_url;
  var HELD = 'data-cg-src';
  // Held back by the gateway (data-cg-vendor) or marked by hand.
  var SEL_HELD = 'script[type="text/plain"][data-category],[data-cg-vendor],[data-cg-src],[data-cg-srcset],[data-cg-href]';

  function catOn(st, cat) { return !!(REQUIRED[cat] || st.choices[cat]); }
  // A vendor is allowed when granted by name, or its category is granted and it was not refused by name.
  function allowed(st, vid, cat) {
    var v = vid ? st.vendors[vid] : null;
    return v != null ? v : catOn(st, cat);
  }

  /* ---- Google Consent Mode v2 ---- */
  w.dataLayer = w.dataLayer || [];
  function gtag() { w.dataLayer.push(arguments); }
  function signals(st) {
    var o = { ad_storage: 'denied', analytics_storage: 'denied', ad_user_data: 'denied', ad_personalization: 'denied' };
    Object.keys(CM.signals).forEach(function (c) {
      CM.signals[c].forEach(function (s) {
        if (st && catOn(st, c)) o[s] = 'granted';
        else if (!o[s]) o[s] = 'denied';
      });
    });
    return o;
  }
  var dflt = signals(null);
  dflt.wait_for_update = CM.wait_for_update;
  gtag('consent', 'default', dflt);
  if (state.explicit) gtag('consent', 'update', signals(state));

  /* ---- language ---- */
  // The visitor's own language when the site offers it (C.lv), else the page's, else the default.
  var hl = (d.documentElement.lang || '').toLowerCase(), hb = hl.split('-')[0];
  var L = !C.lv && (C.i18n[hl] ? hl : C.i18n[hb] && hb) || C.lang;
  var T = C.i18n[L];
  function fmt(s, o) { return s.replace(/\{(\w+)\}/g, function (m, k) { return k in o ? o[k] : m; }); }

  /* ---- DOM helpers (textContent only: configuration never becomes markup) ---- */
  function h(tag, attrs, kids) {
    var e = d.createElement(tag);
    for (var k in attrs) {
      var v = attrs[k];
      if (v == null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function $(sel, el) { return (el || d).querySelector(sel); }
  function $$(sel, el) { return [].slice.call((el || d).querySelectorAll(sel)); }
  function link(href, text) {
    return href ? h('a', { href: href, text: text, target: '_blank', rel: 'noopener' }) : null;
  }

  /* ---- bringing held-back elements back, in document order ---- */
  // A CSS url() held back in place reads url(data:,cg;<category>;<vendor>;<the original, percent-encoded>).
  function unheld(s) {
    return s && s.replace(/url\(data:,cg;([^;]*);([^;]*);([^)]*)\)/g, function (m, c, v, u) {
      return allowed(state, v, c) ? decodeURIComponent(u) : m;
    });
  }
  function restore() {
    $$('style,[style*="data:,cg;"]').forEach(function (e) {
      var s = e.getAttribute('style'), t = e.localName == 'style' && e.textContent;
      if (unheld(s) != s) e.setAttribute('style', unheld(s));
      if (unheld(t) != t) e.textContent = unheld(t);
    });
    run($$(SEL_HELD).filter(function (el) {
      // Claimed once: a second grant while scripts still load must not run them twice.
      var ok = !el.cgRun && allowed(state, el.getAttribute('data-cg-vendor'), el.getAttribute('data-category'));
      if (ok) el.cgRun = 1;
      return ok;
    }), 0);
  }
  function run(list, i) {
    for (; i < list.length; i++) {
      var el = list[i], n = el.localName, p = el.parentNode;
      // An SVG script loads from href (or xlink:href) and is re-created in its own namespace.
      var src = el.getAttribute(HELD) || el.getAttribute('data-cg-href') || el.getAttribute('data-cg-xlink:href');
      if (n === 'script') {
        var svg = el instanceof SVGElement;
        var s = d.createElementNS(el.namespaceURI, n);
        [].forEach.call(el.attributes, function (a) {
          if (a.name !== 'type' && a.name !== 'nonce' && a.name.indexOf('data-cg-') && a.name !== 'src') {
            s.setAttribute(a.name, a.value);
          }
        });
        var t = el.getAttribute('data-cg-type');
        if (t) s.setAttribute('type', t);
        if (el.nonce) s.nonce = el.nonce;
        src = src || el.getAttribute('src');
        if (src) {
          s.async = el.hasAttribute('async');
          s.setAttribute(svg ? 'href' : 'src', src);
        } else s.textContent = el.textContent;
        p.replaceChild(s, el);
        if (src && !s.async) {
          // Wait for this one before the next, as the parser would have.
          s.onload = s.onerror = run.bind(null, list, i + 1);
          return;
        }
      } else {
        // Every fetching attribute X was renamed data-cg-X: put them all back.
        [].slice.call(el.attributes).forEach(function (a) {
          var k = a.name.slice(8);
          if (!a.name.indexOf('data-cg-') && k !== 'vendor' && k !== 'bailout') {
            if (k === 'xlink:href') el.setAttributeNS('http://www.w3.org/1999/xlink', k, a.value);
            else el.setAttribute(k, a.value);
            el.removeAttribute(a.name);
          }
        });
        // A refresh or a plugin acts on insertion, a media element chooses its source on load().
        if (/^(meta|object|embed)$/.test(n)) p.replaceChild(el.cloneNode(true), el);
        else if (p.load) p.load();
        if (el.cgPh) {
          el.cgPh.remove();
          el.hidden = false;
        }
      }
    }
  }

  // Hosts of the held elements nobody classified: named in their category's section, shown only then.
  function unclassifiedHosts() {
    var o = {};
    $$('[data-category=unclassified]').forEach(function (e) {
      [].forEach.call(e.attributes, function (a) {
        try {
          var u = new URL(a.value, d.baseURI);
          if (!a.name.indexOf('data-cg-') && u.host != location.host) o[u.hostname] = 1;
        } catch (x) {}
      });
    });
    return Object.keys(o);
  }

  /* ---- placeholders for held-back iframes ---- */
  function vendorOf(id) { return VENDORS.filter(function (v) { return v.id === id; })[0]; }
  function placeholders() {
    $$('iframe[data-cg-vendor]').forEach(function (f) {
      var id = f.getAttribute('data-cg-vendor'), u = f.getAttribute(HELD), v = vendorOf(id);
      var cat = T.cats[f.getAttribute('data-category')];
      // A host nobody classified ("unclassified") is named by its host.
      try {
        if (!v && u) v = { id: id, name: new URL(u, d.baseURI).hostname };
      } catch (x) {}
      if (!v || !cat || f.cgPh) return;
      var host = h('div', { class: 'cg-ph-host', lang: L }), p = h('div', { class: 'cg-ph', role: 'region', 'aria-label': v.name }, [
        h('p', { text: fmt(T.placeholder, { vendor: v.name, category: cat[2] }) }),
        h('button', { type: 'button', class: 'cg-btn cg-pri', 'data-cg-allow': v.id, text: fmt(T.allow_vendor, { vendor: v.name }) }),
        h('p', { class: 'cg-msg', role: 'status' })
      ]);
      var wd = f.getAttribute('width'), ht = f.getAttribute('height');
      if (wd) p.style.maxWidth = /^\d+$/.test(wd) ? wd + 'px' : wd;
      if (ht) p.style.minHeight = /^\d+$/.test(ht) ? ht + 'px' : ht;
      shadow(host).appendChild(p);
      f.parentNode.insertBefore(host, f);
      f.hidden = true;
      f.cgPh = host;
    });
  }

  /* ---- the two layers ---- */
  var host, root, layer1, layer2, msg1, msg2, reopen, opener;

  // A shadow root with the banner's stylesheet: the site's CSS stays out, ours stays in.
  function shadow(el) {
    var sr = el.attachShadow({ mode: 'open' }), l = h('link', { rel: 'stylesheet', href: C.css });
    if (NONCE) l.nonce = NONCE;
    for (var k in C.theme) el.style.setProperty('--cg-' + k, C.theme[k]);
    sr.appendChild(l);
    return sr;
  }

  function btn(action, text, cls) {
    return h('button', { type: 'button', class: 'cg-btn ' + (cls || ''), 'data-cg-a': action, text: text });
  }
  function sw(id, label, checked, disabled, extra, tag) {
    var i = h('input', { type: 'checkbox', role: 'switch', id: id, class: 'cg-sw', disabled: disabled });
    i.checked = checked;
    for (var k in extra) i.setAttribute(k, extra[k]);
    return h('div', { class: 'cg-row' }, [h(tag || 'span', {}, [h('label', { for: id, text: label })]), i]);
  }
  function build() {
    var cookiesLine = function (v) {
      var lt = T.lifetimes || {};
      return v.cookies.map(function (c) { return c[1] ? c[0] + ' (' + (lt[c[1]] || c[1]) + ')' : c[0]; }).join(', ');
    };
    layer1 = h('div', { class: 'cg-b', role: 'dialog', 'aria-labelledby': 'cg-t', 'aria-describedby': 'cg-d', tabindex: '-1', hidden: true }, [
      h('h2', { id: 'cg-t', text: T.title }),
      h('p', { id: 'cg-d', text: T.text + ' ' }, [link(C.privacy_policy_url, T.privacy_link)]),
      C.gpc ? h('p', { text: T.gpc }) : null,
      h('div', { class: 'cg-acts' }, [
        btn('accept', T.accept_all, 'cg-pri'), btn('reject', T.reject_all, 'cg-pri'), btn('custom', T.customize)
      ]),
      msg1 = h('p', { class: 'cg-msg', role: 'status' })
    ]);
    var uh = unclassifiedHosts();
    var list = h('div', { class: 'cg-cats' }, CATS.map(function (c) {
      var vs = VENDORS.filter(function (v) { return v.category === c.id; }), tx = T.cats[c.id];
      var un = c.id == 'unclassified';
      return h('section', { class: 'cg-cat', hidden: un && !uh.length }, [
        sw('cg-c-' + c.id, tx[0], c.required, c.required, { 'data-cg-cat': c.id, 'aria-describedby': 'cg-cd-' + c.id }, 'h3'),
        h('p', { id: 'cg-cd-' + c.id, text: (c.required ? T.always_on + '. ' : '') + tx[1] }),
        un ? h('p', { class: 'cg-hosts', text: uh.join(', ') }) : null,
        vs.length ? h('details', {}, [
          h('summary', { text: fmt(T.vendors, { n: vs.length }) }),
          h('ul', {}, vs.map(function (v) {
            return h('li', {}, [
              sw('cg-v-' + v.id, v.name, false, c.required, { 'data-cg-vendor': v.id, 'data-cg-of': c.id }),
              v.cookies.length ? h('p', { text: T.cookies + ' ' + cookiesLine(v) }) : null,
              link(v.policy_url, fmt(T.vendor_policy, { vendor: v.name }))
            ]);
          }))
        ]) : null
      ]);
    }));
    layer2 = h('div', { class: 'cg-ov', hidden: true }, [
      h('div', { class: 'cg-m', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'cg-t2', 'aria-describedby': 'cg-d2', tabindex: '-1' }, [
        h('div', { class: 'cg-hd' }, [
          h('h2', { id: 'cg-t2', text: T.prefs_title }),
          h('button', { type: 'button', class: 'cg-x', 'data-cg-a': 'close', 'aria-label': T.close, text: '\u00d7' })
        ]),
        h('p', { id: 'cg-d2', text: T.prefs_text + ' ' }, [link(C.privacy_policy_url, T.privacy_link)]),
        list,
        h('p', { class: 'cg-id' }),
        h('div', { class: 'cg-acts' }, [
          btn('accept', T.accept_all, 'cg-pri'), btn('reject', T.reject_all, 'cg-pri'), btn('save', T.save)
        ]),
        h('button', { type: 'button', class: 'cg-lnk', 'data-cg-a': 'withdraw', text: T.withdraw }),
        msg2 = h('p', { class: 'cg-msg', role: 'status' })
      ])
    ]);
    reopen = h('button', { type: 'button', class: 'cg-re', 'data-cg-a': 'prefs', text: T.reopen, hidden: true });
    host = h('div', { id: 'cg-root', lang: L });
    root = shadow(host);
    root.appendChild(h('div', { class: 'cg-' + C.position + ' cg-re-' + C.reopen_position }, [layer1, layer2, reopen]));
    d.body.appendChild(host);
    return root.firstChild; // the stylesheet
  }

  function focusables(el) {
    return $$('button,input,a[href],summary', el).filter(function (e) { return !e.disabled && e.getClientRects().length; });
  }
  function show() {
    opener = opener || root.activeElement || d.activeElement;
    layer2.hidden = true;
    layer1.hidden = false;
    reopen.hidden = true;
    layer1.focus({ preventScroll: true });
  }
  function hideAll() {
    layer1.hidden = layer2.hidden = true;
    reopen.hidden = false;
    if (opener && opener !== d.body && opener.isConnected) opener.focus();
    opener = null;
  }
  function showPreferences() {
    if (layer1.hidden) opener = opener || root.activeElement || d.activeElement;
    layer1.hidden = true;
    reopen.hidden = true;
    $$('.cg-sw', layer2).forEach(function (i) {
      var c = i.getAttribute('data-cg-cat'), v = i.getAttribute('data-cg-vendor');
      var of = i.getAttribute('data-cg-of');
      i.checked = c ? catOn(state, c) : !!REQUIRED[of] || state.explicit && allowed(state, v, of);
    });
    var idp = $('.cg-id', layer2);
    idp.textContent = '';
    idp.hidden = !consentId;
    if (consentId) {
      idp.append(T.consent_id + ' ', h('code', { text: consentId }), ' ', link(receiptUrl, T.receipt) || '');
    }
    $('.cg-lnk', layer2).hidden = !state.explicit;
    msg2.textContent = '';
    layer2.hidden = false;
    $('.cg-m', layer2).focus({ preventScroll: true });
  }
  function closePreferences() {
    if (state.explicit) hideAll();
    else show();
  }

  /* ---- talking to the gateway ---- */
  var busy = false;
  function api(method, body, msg) {
    if (busy) return Promise.reject();
    busy = true;
    msg.textContent = '';
    return fetch(C.api + '/choices', {
      method: method,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: body && JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw j;
        // A choice to carry to the sister domains: the page goes through them and comes back.
        if (j.sync) return new Promise(function () { w.location.assign(j.sync); });
        return j;
      });
    }).catch(function (e) {
      msg.textContent = T.error;
      throw e;
    }).finally(function () { busy = false; });
  }
  function applied(res) {
    var prev = state;
    state = { explicit: true, choices: res.choices || {}, vendors: res.vendors || {} };
    consentId = res.consent_id;
    receiptUrl = res.receipt_url || receiptUrl;
    gtag('consent', 'update', signals(state));
    d.dispatchEvent(new CustomEvent('cg:consent', { detail: { choices: state.choices, vendors: state.vendors } }));
    // Running trackers cannot be stopped: narrowing reloads a page the server rewrote without them. Under an
    // enforced CSP backstop (C.reload) every choice reloads: the page's policy predates it.
    if (C.reload || CATS.some(function (c) { return catOn(prev, c.id) && !catOn(state, c.id); }) ||
      VENDORS.some(function (v) { return allowed(prev, v.id, v.category) && !allowed(state, v.id, v.category); })) {
      return w.location.reload();
    }
    restore();
    if (!layer1.hidden || !layer2.hidden) hideAll();
  }
  function choose(body, msg) {
    return api('POST', body, msg).then(applied, function () {});
  }
  // A page restored by Back from the back/forward cache may predate the visitor's last choice (the HTTP
  // cache cannot serve one: pages vary on Cookie).
  function recheck(e) {
    if (!e.persisted) return;
    fetch(C.api + '/state', { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (j) {
      if (j.consent) applied(j.consent);
      else if (state.explicit) w.location.reload();
    }, function () {});
  }
  function saveCustom() {
    var choices = {}, vendors = {};
    $$('[data-cg-cat]', layer2).forEach(function (i) {
      if (!REQUIRED[i.getAttribute('data-cg-cat')]) choices[i.getAttribute('data-cg-cat')] = i.checked;
    });
    // Only deviations from the category are sent: a vendor on in a refused category, or off in a granted one.
    $$('[data-cg-vendor]', layer2).forEach(function (i) {
      var c = i.getAttribute('data-cg-of');
      if (!REQUIRED[c] && i.checked !== !!choices[c]) vendors[i.getAttribute('data-cg-vendor')] = i.checked;
    });
    choose({ choices: choices, vendors: vendors }, msg2);
  }

  var ACTIONS = {
    accept: function (m) { choose({ action: 'accept_all' }, m); },
    reject: function (m) { choose({ action: 'reject_all' }, m); },
    custom: showPreferences,
    prefs: showPreferences,
    save: saveCustom,
    close: closePreferences,
    withdraw: function (m) { api('DELETE', null, m).then(function () { w.location.reload(); }, function () {}); }
  };

  function onClick(e) {
    var t = e.composedPath()[0];
    t = t.closest && t.closest('[data-cg-a],[data-cg-open],[data-cg-allow]');
    if (!t) return;
    if (t.hasAttribute('data-cg-open')) {
      e.preventDefault();
      opener = t;
      showPreferences();
    } else if (t.hasAttribute('data-cg-allow')) {
      var vs = Object.assign({}, state.vendors), cs = Object.assign({}, state.choices), a = t.getAttribute('data-cg-allow');
      // "unclassified" is no vendor: its category is granted (every host nobody classified)
      (a == 'unclassified' ? cs : vs)[a] = true;
      choose({ choices: cs, vendors: vs }, t.parentNode.lastChild);
    } else {
      ACTIONS[t.getAttribute('data-cg-a')](layer2.hidden ? msg1 : msg2);
    }
  }
  function onChange(e) {
    var t = e.target, c = t.getAttribute('data-cg-cat');
    // A category switch carries its vendors' switches along.
    if (c) $$('[data-cg-of="' + c + '"]', layer2).forEach(function (i) { i.checked = t.checked; });
  }
  function onKey(e) {
    if (layer2.hidden) return;
    if (e.key === 'Escape') {
      e.preventDefault();
      closePreferences();
    } else if (e.key === 'Tab') {
      var f = focusables(layer2);
      var a = root.activeElement, i = f.indexOf(a);
      if (e.shiftKey ? i <= 0 : i === f.length - 1 || i < 0 && !layer2.contains(a)) {
        e.preventDefault();
        f[e.shiftKey ? f.length - 1 : 0].focus();
      }
    }
  }

  function init() {
    var l = build();
    placeholders();
    d.addEventListener('click', onClick);
    layer2.addEventListener('change', onChange);
    d.addEventListener('keydown', onKey);
    w.addEventListener('pageshow', recheck);
    restore(); // hand-marked tags the visitor's current choice already allows
    // Shown once styled: an unstyled flash would be worse than a few ms of wait.
    l.onload = l.onerror = function () {
      if (state.explicit) reopen.hidden = false;
      else if (layer2.hidden) show();
      host.setAttribute('data-cg-ready', '');
    };
  }

  w.consentGateway = {
    show: function () { show(); },
    showPreferences: function () { showPreferences(); },
    acceptedCategory: function (c) { return catOn(state, c); },
    acceptedVendor: function (id) {
      var v = vendorOf(id);
      return !!v && allowed(state, id, v.category);
    }
  };
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', init);
  else init();
})(window, document);
