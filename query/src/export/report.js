// Clicking a waterfall row shows its breakdown (from the row's tooltip) below the chart.
(function () {
  var detail = document.getElementById('span-detail');
  var rows = document.querySelectorAll('.waterfall .span-row');
  rows.forEach(function (row) {
    row.addEventListener('click', function () {
      rows.forEach(function (r) { r.classList.remove('selected'); });
      row.classList.add('selected');
      var title = row.querySelector('title');
      if (detail && title) { detail.textContent = title.textContent; }
    });
  });
  document.body.setAttribute('data-rows', String(rows.length));
})();
