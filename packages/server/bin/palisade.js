#!/usr/bin/env node
// The `palisade` command. A committed file (the build output does not exist yet when npm links bins on `npm ci`).
import "../dist/main.js";
