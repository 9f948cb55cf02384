// Debian's Chromium, headless, with the flags every browser test and benchmark runs it with:
// WebGPU on (SwiftShader here), nothing fetched in the background (this machine has no network).
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
}
