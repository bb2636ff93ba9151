// The site's behaviour: search (Pagefind's UI over its static index), the sidebar button on a phone, the table of
// contents folded on a phone and following the reading in the margin, and a copy button on every code block.
// No library, nothing from the network.
(function () {
  "use strict";
  const phone = window.matchMedia("(max-width: 800px)");

  // search: Pagefind's index lies in pagefind/ next to the pages
  const search = document.getElementById("search");
  if (search && location.protocol === "file:") {
    // the browser does not let a page opened as a file read the index: serve the folder (python -m http.server)
    search.innerHTML = '<span class="search-offline">Search works when the site is served: python -m http.server -d _docs</span>';
  } else if (window.PagefindUI && search) {
    new PagefindUI({ element: "#search", showSubResults: true, showImages: false, resetStyles: false,
                     translations: { placeholder: "Search (press /)" } });
  }
  // `/` goes to the search box, as on most documentation sites
  document.addEventListener("keydown", function (e) {
    const input = document.querySelector("#search input");
    if (e.key !== "/" || !input || e.ctrlKey || e.metaKey || e.altKey || e.target.closest("input, textarea, select")) return;
    e.preventDefault(); input.focus();
  });

  // the sidebar: hidden behind the header's button on a phone
  const toggle = document.querySelector(".nav-toggle");
  if (toggle) toggle.addEventListener("click", function () {
    const open = document.body.classList.toggle("nav-open");
    toggle.setAttribute("aria-expanded", String(open));
  });
  document.addEventListener("keydown", function (e) {  // Escape closes it again
    if (e.key === "Escape" && toggle && document.body.classList.contains("nav-open")) {
      document.body.classList.remove("nav-open"); toggle.setAttribute("aria-expanded", "false"); toggle.focus();
    }
  });

  // the table of contents under the title: folded on a phone, where it would fill the first screen
  const toc = document.querySelector(".toc-inline details");
  if (toc && phone.matches) toc.open = false;

  // the sidebar opens at the current page, not at its top, when the list is longer than the window
  const here = document.querySelector(".sidebar a.active"), side = document.querySelector(".sidebar");
  if (here && side && !phone.matches) {
    const r = here.getBoundingClientRect(), b = side.getBoundingClientRect();
    if (r.bottom > b.bottom) side.scrollTop += r.top - b.top - b.height / 3;
  }

  // the table of contents follows the reading: the section at the top of the window is marked in the margin
  const marks = Array.from(document.querySelectorAll(".toc-side a")).map(function (a) {
    return [a, document.getElementById(decodeURIComponent(a.hash.slice(1)))];
  }).filter(function (m) { return m[1]; });
  let pending = false;
  function mark() {
    pending = false;
    let current = null;
    marks.forEach(function (m) { if (m[1].getBoundingClientRect().top < 90) current = m[0]; });
    const end = document.scrollingElement;  // at the bottom of the page the last sections can never reach the top
    if (end.scrollTop > 0 && end.scrollTop + window.innerHeight >= end.scrollHeight - 2) current = marks[marks.length - 1][0];
    marks.forEach(function (m) { m[0].classList.toggle("active", m[0] === current); });
    if (current) {  // a long contents scrolls in its own box: keep the marked entry in view
      const box = current.closest(".toc"), r = current.getBoundingClientRect(), b = box.getBoundingClientRect();
      if (r.top < b.top || r.bottom > b.bottom) box.scrollTop += r.top - b.top - b.height / 3;
    }
  }
  if (marks.length) {
    window.addEventListener("scroll", function () { if (!pending) { pending = true; requestAnimationFrame(mark); } }, { passive: true });
    mark();
  }

  // copy buttons: the code as written (soft-wrapped lines are copied as one line)
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }
  document.querySelectorAll("main .jp-InputArea-editor pre, main .jp-RenderedMarkdown pre").forEach(function (pre) {
    const box = pre.parentElement;
    box.classList.add("has-copy");
    const button = document.createElement("button");
    button.type = "button"; button.className = "copy-button"; button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy the code");
    button.addEventListener("click", function () {
      copyText(pre.innerText.replace(/\n$/, "")).then(function () {
        button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500);
      }, function () { button.textContent = "Select and copy"; });
    });
    box.appendChild(button);
  });
})();
