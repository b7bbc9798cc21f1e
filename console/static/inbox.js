// The alert inbox: the rows refresh by htmx polling, except while alerts are ticked for bulk
// acknowledgement (a refresh would untick them).
document.addEventListener("htmx:beforeRequest", function (event) {
  if (event.target.id === "inbox-rows" && document.querySelector("#inbox-rows input[name=alert_id]:checked")) {
    event.preventDefault();
  }
});
