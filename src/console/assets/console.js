// quorumkey console: live refresh. Fetches this page again every data-refresh-ms and swaps the
// #live part for the new one (parsed inertly by DOMParser: nothing in it runs).
'use strict';
(function () {
  const period = Number(document.body.dataset.refreshMs) || 2000;
  const status = document.getElementById('refresh-status');
  let refreshes = 0;
  async function refresh() {
    try {
      const res = await fetch(location.pathname, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'text/html' } });
      if (res.status === 401 || res.status === 403) {
        status.textContent = 'Signed out (' + res.status + '): sign in again at /console/login.';
        return;
      }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      const fresh = doc.getElementById('live');
      const live = document.getElementById('live');
      if (fresh && live) live.replaceWith(document.importNode(fresh, true));
      refreshes++;
      document.body.dataset.refreshes = String(refreshes);
      status.textContent = '';
    } catch (e) {
      status.textContent = 'Refresh failed (' + e.message + '); retrying.';
    }
    setTimeout(refresh, period);
  }
  setTimeout(refresh, period);
})();
