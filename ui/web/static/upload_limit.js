(function () {
  var CONFIG = window.ccUploadConfig || {}, LIMIT_MB = CONFIG.limitMb, MB = 1048576;
  var PLACES = [
    {box: '#cc-upload', note: 'cc-upload-note-text', tail: 'so it was not added. ' + CONFIG.advice},
    {box: '#cc-question', note: 'cc-attach-note-text',
     tail: 'so I could not search by it. ' + CONFIG.attachAdvice}];
  function check(place, files) {
    var note = document.getElementById(place.note);
    if (!note) return;
    note.textContent = Array.prototype.filter.call(files || [], function (f) {
      return f.size > LIMIT_MB * MB;
    }).map(function (f) {
      return '“' + f.name + '” is ' + (f.size / MB).toFixed(1) + ' MB, more than the ' +
        LIMIT_MB + ' MB allowed, ' + place.tail;
    }).join(' ');
  }
  PLACES.forEach(function (place) {
    document.addEventListener('change', function (ev) {
      var t = ev.target;
      if (t.matches && t.matches(place.box + ' input[type=file]')) check(place, t.files);
    }, true);
    document.addEventListener('drop', function (ev) {
      var t = ev.target;
      if (t.closest && t.closest(place.box) && ev.dataTransfer) {
        check(place, ev.dataTransfer.files);
      }
    }, true);
  });
  // A new question clears the note about an earlier attachment.
  function clearAttachNote() {
    var note = document.getElementById('cc-attach-note-text');
    if (note) note.textContent = '';
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && ev.target.closest &&
        ev.target.closest('#cc-question')) clearAttachNote();
  }, true);
  document.addEventListener('click', function (ev) {
    if (ev.target.closest && ev.target.closest('#cc-ask')) clearAttachNote();
  }, true);
  // One message per problem: our note says which file, how big and what to do, so Gradio's
  // own notice of the same refusal (a toast, and an "Error" badge in the box) is taken away.
  function dropDuplicates() {
    var noted = ['cc-upload-note-text', 'cc-attach-note-text'].some(function (id) {
      var n = document.getElementById(id);
      return n && n.textContent;
    });
    if (!noted) return;
    document.querySelectorAll('[data-testid="toast-body"]').forEach(function (toast) {
      if (/exceed the maximum allowed size/i.test(toast.textContent)) toast.remove();
    });
    document.querySelectorAll('#cc-upload .error, #cc-question .error').forEach(function (el) {
      if (el.textContent.trim() === 'Error') el.style.display = 'none';
    });
  }
  new MutationObserver(dropDuplicates).observe(document.documentElement,
                                               {childList: true, subtree: true});
})();
