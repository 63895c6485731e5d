// The studio page (skeleton; see issue 6).
const app = document.getElementById('app')!;
app.textContent = 'WebLoRA studio: loading…';
