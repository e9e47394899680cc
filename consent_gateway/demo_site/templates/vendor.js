/* Stand-in for {{ name }}, served by the consent-gateway demo: it does what the real tag does in ways a
   test can observe (first-party cookies, a beacon to the vendor, window.cgDemoLoaded), and nothing else. */
(function (vendor, cookies, beacon) {
  var w = window, d = document;
  (w.cgDemoLoaded = w.cgDemoLoaded || []).push(vendor);
  cookies.forEach(function (cookie) {
    document.cookie = cookie + "; path=/; max-age=" + 60 * 60 * 24 * 390 + "; SameSite=Lax";
  });
  if (beacon) {
    var url = beacon + (beacon.indexOf("?") < 0 ? "?" : "&") + "dl=" + encodeURIComponent(d.location.pathname);
    if (w.navigator.sendBeacon) { w.navigator.sendBeacon(url); } else { new Image(1, 1).src = url; }
  }
{%- if vendor == "twitter" %}
  var tweets = d.querySelectorAll("blockquote.twitter-tweet");
  for (var i = 0; i < tweets.length; i++) { tweets[i].classList.add("cg-demo-rendered"); }
{%- elif vendor == "meta-pixel" %}
  if (w.fbq) { w.fbq.callMethod = function () {}; w.fbq.queue = []; }
{%- endif %}
})({{ vendor|tojson }}, {{ cookies|tojson }}, {{ beacon|tojson }});
