document.addEventListener("click", function (event) {
  var button = event.target.closest(".toggle-password");
  if (!button) return;
  var input = document.getElementById(button.dataset.target);
  if (input) input.type = input.type === "password" ? "text" : "password";
});
