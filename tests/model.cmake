# Model loading and forward tests (src/format, src/model, src/backend/cpu).
