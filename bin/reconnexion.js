#!/usr/bin/env node
// The `reconnexion` command once linked or installed from a checkout
// (`npm link`, or the Docker image). Node >= 24 runs the TypeScript sources
// directly (type stripping), so there is no build step.
import "../src/cli.ts";
