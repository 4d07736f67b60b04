(function () {
  function clock(s) {
    s = Math.max(0, Math.floor(s)); var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    var ss = String(s % 60).padStart(2, '0'), mm = String(m).padStart(2, '0');
    return h ? h + ':' + mm + ':' + ss : mm + ':' + ss;
  }
  document.addEventListener('click', function (ev) {
    var chip = ev.target.closest && ev.target.closest('.cc-chip');
    if (!chip) return;
    ev.preventDefault();
    var v = document.getElementById('cc-player');
    if (!v) return;
    var id = chip.getAttribute('name'), parts = (chip.getAttribute('value') || '').split('|');
    var start = parseFloat(parts[0]) || 0;
    var title = chip.textContent.replace(/^\s*\[\d+\]\s*/, '').replace(/\s*·\s*[\d:]+\s*$/, '');
    document.getElementById('cc-player-title').textContent = title + ' · ' + clock(start);
    var said = chip.getAttribute('title') || '';
    document.getElementById('cc-player-text').textContent = said ? '“' + said + '”' : '';
    var thumb = document.getElementById('cc-player-thumb'), shot = parts[3];
    if (thumb && shot) {  // a slide or frame hit: the picture on screen beside the cited text
      thumb.onerror = function () { thumb.style.display = 'none'; };
      thumb.alt = 'The screen at ' + clock(parseFloat(shot));
      thumb.src = 'thumb/' + encodeURIComponent(id) + '?t=' + encodeURIComponent(shot);
      thumb.style.display = '';
    } else if (thumb) {
      thumb.removeAttribute('src'); thumb.style.display = 'none';
    }
    var open = document.getElementById('cc-player-open');
    if (open) {
      open.href = '?recording=' + encodeURIComponent(id) + '&t=' + start.toFixed(2);
      open.style.display = '';
    }
    if (parts[2] === 'text') {  // a transcript only: nothing to play, the cited line is shown
      v.pause(); v.removeAttribute('src'); v.removeAttribute('data-media'); v.load();
      document.getElementById('cc-player-title').textContent = title + ' · ' + clock(start) +
        ' (a transcript only: there is no sound to play; open it to read around this line)';
      return;
    }
    v.className = parts[2] === 'audio' ? 'cc-audio' : 'cc-video';
    v.setAttribute('data-start', String(start));
    var seek = function () {
      v.currentTime = start; v.setAttribute('data-ready', '1');
      var p = v.play(); if (p && p.catch) p.catch(function () {});
    };
    if (v.getAttribute('data-media') === id && v.readyState >= 1) { seek(); return; }
    v.setAttribute('data-media', id); v.removeAttribute('data-ready');
    v.onerror = function () {  // in the title line: the cited text stays readable
      document.getElementById('cc-player-title').textContent =
        'This recording cannot be played right now. It may have been removed, or you may not ' +
        'have access to it. Ask your administrator if you need it.';
    };
    v.addEventListener('loadedmetadata', seek, {once: true});
    v.src = 'media/' + encodeURIComponent(id) + '#t=' + start.toFixed(2);
    setCaptions(v, 'captions/' + encodeURIComponent(id) + '.vtt');
    v.load();
  });

  // Captions: the transcript as WebVTT, speaker names as voice tags.
  function setCaptions(v, src) {
    Array.prototype.forEach.call(v.querySelectorAll('track'), function (t) { t.remove(); });
    var t = document.createElement('track');
    t.kind = 'captions'; t.label = 'Transcript'; t.default = true; t.src = src;
    v.appendChild(t);
    t.track.mode = 'showing';
  }
  // Chrome draws no captions for sound without a picture: the box under the player shows
  // the current caption with its speaker (hidden under a video, which draws its own).
  document.addEventListener('cuechange', function (ev) {
    var track = ev.target, v = track.parentElement, box = v && v.nextElementSibling;
    if (!track.track || !box || !box.classList.contains('cc-caption')) return;
    box.textContent = Array.prototype.map.call(track.track.activeCues || [], function (c) {
      var who = /^<v\s+([^>]+)>/.exec(c.text), name = '';
      if (who) {  // the name is escaped in the file: show it as the text it was
        var d = document.createElement('textarea'); d.innerHTML = who[1]; name = d.value + ': ';
      }
      return name + c.getCueAsHTML().textContent;
    }).join(' ');
  }, true);
  // After a speaker is renamed: the same captions again, with the new name.
  window.ccReloadCaptions = function () {
    var v = document.getElementById('cc-rec-player'), t = v && v.querySelector('track');
    if (t) setCaptions(v, t.getAttribute('src').split('?')[0] + '?v=' + Date.now());
  };

  // The recording page: transcript lines, slide thumbnails and found moments play from their
  // start; the line being played is highlighted and kept in view.
  function playFrom(v, t) {
    var go = function () {
      v.currentTime = t; v.setAttribute('data-seeked', t.toFixed(2));
      var p = v.play(); if (p && p.catch) p.catch(function () {});
    };
    if (v.readyState >= 1) go(); else v.addEventListener('loadedmetadata', go, {once: true});
  }
  function seekFromPage(ev) {
    var el = ev.target.closest && ev.target.closest('.cc-line, .cc-seek');
    if (!el || !document.getElementById('cc-rec-box')) return;
    ev.preventDefault();
    var t = parseFloat(el.getAttribute('data-start')) || 0;
    var v = document.getElementById('cc-rec-player');
    if (v) playFrom(v, t); else follow({currentTime: t});  // a transcript only: mark the line
  }
  document.addEventListener('click', seekFromPage);
  document.addEventListener('keydown', function (ev) {
    if ((ev.key === 'Enter' || ev.key === ' ') && ev.target.classList &&
        ev.target.classList.contains('cc-line')) seekFromPage(ev);
  });
  function follow(v) {
    var t = v.currentTime, lines = document.querySelectorAll('#cc-rec-lines .cc-line'), now = null;
    for (var i = 0; i < lines.length; i++) {
      if (parseFloat(lines[i].getAttribute('data-start')) <= t + 0.05) now = lines[i]; else break;
    }
    var bar = document.getElementById('cc-rec-timeline');
    var head = document.getElementById('cc-rec-playhead');
    if (bar && head) {
      var length = parseFloat(bar.getAttribute('data-length')) || v.duration || 1;
      head.style.left = Math.min(100, 100 * t / length) + '%';
    }
    var was = document.querySelector('#cc-rec-lines .cc-current');
    if (now === was) return;
    if (was) was.classList.remove('cc-current');
    if (!now) return;
    now.classList.add('cc-current');
    var box = document.getElementById('cc-rec-lines');  // scroll the list, not the page
    box.scrollTop = Math.max(0, now.offsetTop - box.clientHeight / 3);
  }
  // Media events do not bubble: listen while they travel down (capture).
  ['timeupdate', 'seeked'].forEach(function (name) {
    document.addEventListener(name, function (ev) {
      if (ev.target && ev.target.id === 'cc-rec-player') follow(ev.target);
    }, true);
  });

  // A transcript-only recording opened at a moment (a citation's link) marks its line.
  var marked = null;
  new MutationObserver(function () {
    var box = document.getElementById('cc-rec-box');
    if (!box || box === marked || document.getElementById('cc-rec-player') ||
        !document.querySelector('#cc-rec-lines .cc-line')) return;
    marked = box;
    follow({currentTime: parseFloat(box.getAttribute('data-start')) || 0});
  }).observe(document.documentElement, {childList: true, subtree: true});

  // A page whose sign-in has ended (signed out in another tab, the server restarted) gets
  // HTTP 401 from every call and would silently do nothing: say so, once.
  var realFetch = window.fetch;
  window.fetch = function () {
    return realFetch.apply(this, arguments).then(function (r) {
      if (r.status === 401 && !document.getElementById('cc-signed-out')) {
        var note = document.createElement('div');
        note.id = 'cc-signed-out'; note.setAttribute('role', 'alert');
        note.textContent = 'You are signed out, so nothing you do here reaches clipcite. ';
        var again = document.createElement('a');
        again.href = window.location.pathname; again.textContent = 'Sign in again';
        note.appendChild(again);
        document.body.appendChild(note);
      }
      return r;
    });
  };
})();
