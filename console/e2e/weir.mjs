// Starts and stops a real `weir serve` for the end-to-end test: WEIR_BIN on a free port
// (127.0.0.1:0) with the given data directory, its URL read from the "ready at" log line.

import { spawn } from 'node:child_process';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const consoleDist = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist');

export function weirBin() {
  const bin = process.env.WEIR_BIN;
  if (!bin) {
    console.error(
      'WEIR_BIN is not set: point it at a weir binary, e.g.\n' +
        '  WEIR_BIN=../target/release/weir npm run e2e\n' +
        '(add WEIR_E2E_CONSOLE_DIR=1 to serve this checkout\'s console/dist instead of the embedded console)',
    );
    process.exit(2);
  }
  return bin;
}

/** Starts the server; resolves to { url, stop(), log() } once it says it is ready. */
export function startWeir(dataDir, { timeoutMs = 20000, extraArgs = [] } = {}) {
  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...extraArgs];
  if (process.env.WEIR_E2E_CONSOLE_DIR) args.push('--console-dir', consoleDist);
  const child = spawn(weirBin(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEIR_LOG: process.env.WEIR_LOG ?? 'info' } });
  let output = '';
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`weir did not say "ready at" within ${timeoutMs} ms; its output:\n${output}`));
    }, timeoutMs);
    const onData = (chunk) => {
      output += chunk;
      const m = /ready at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        child.stderr.off('data', onData);
        // Keep draining so the child never blocks on a full pipe.
        child.stdout.on('data', (c) => (output += c));
        child.stderr.on('data', (c) => (output += c));
        resolveReady({
          url: m[1],
          log: () => output,
          async stop() {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            const result = await Promise.race([
              exited,
              new Promise((r) => setTimeout(() => r(null), 10000)),
            ]);
            if (result === null) {
              child.kill('SIGKILL');
              throw new Error('weir did not exit within 10 s of SIGTERM');
            }
            return result;
          },
        });
      }
    };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${weirBin()}: ${e.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`weir exited (code ${code}, signal ${signal}) before it was ready; its output:\n${output}`));
    });
  });
}
