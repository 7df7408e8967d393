// Long tables (members, timeline) rendered virtually (docs/DASHBOARD.md): above VIRTUAL_MIN
// rows, only the rows visible in the table's scroll box (and a few around) are in the page;
// a spacer row above and one below keep the scroll height of all of them.
'use strict';

// `?virtual=N` in the page's address sets the threshold (no credentials: a display setting).
const VIRTUAL_MIN = Number(new URLSearchParams(location.search).get('virtual')) || 200;
const VIRTUAL_EXTRA = 10; // rows rendered beyond each edge of the visible part

// Renders `items` into `tbody` through `makeRow`, in the scroll box `box` (an element with a
// bounded height and overflow: auto) that holds its table; `empty` is the row shown for none.
function virtualRows(box, tbody, items, makeRow, empty) {
  box.virtual = { tbody, items, makeRow, empty };
  if (!box.virtualBound) {
    box.virtualBound = true;
    box.addEventListener('scroll', () => drawVirtual(box), { passive: true });
  }
  drawVirtual(box);
}

function drawVirtual(box) {
  const { tbody, items, makeRow, empty } = box.virtual;
  if (!items.length) {
    tbody.replaceChildren(...(empty ? [empty] : []));
    return;
  }
  if (items.length <= VIRTUAL_MIN) {
    tbody.replaceChildren(...items.map(makeRow));
    return;
  }
  const rowPx = box.rowPx || 30;
  // The rows above the table's body: its header.
  const head = tbody.offsetTop || 0;
  const first = Math.max(0, Math.floor((box.scrollTop - head) / rowPx) - VIRTUAL_EXTRA);
  const count = Math.ceil(box.clientHeight / rowPx) + 2 * VIRTUAL_EXTRA;
  const last = Math.min(items.length, first + count);
  const cols = tbody.parentElement.tHead ? tbody.parentElement.tHead.rows[0].cells.length : 1;
  const spacer = (rows) => {
    const td = el('td', { colSpan: cols });
    td.style.height = rows * rowPx + 'px'; // through the CSSOM: allowed by the page's policy
    td.style.padding = '0';
    td.style.border = '0';
    return el('tr', { class: 'spacer', 'data-rows': rows }, td);
  };
  const rows = items.slice(first, last).map(makeRow);
  tbody.replaceChildren(spacer(first), ...rows, spacer(items.length - last));
  // The real height of a row, for the next draw.
  const measured = rows[0].getBoundingClientRect().height;
  if (measured > 0) box.rowPx = measured;
}
