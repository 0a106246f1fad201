// Package e2e drives the web console (package ui) in Debian's chromium,
// through chromedp, against real `nexus agent` processes
// (internal/proccluster).
//
// The tests skip when chromium is not installed, unless NEXUS_UI_REQUIRED=1
// (CI), and in -short mode. Environment:
//
//	NEXUS_UI_REQUIRED=1     fail instead of skipping without chromium
//	NEXUS_UI_CHROMIUM       the browser binary (default: chromium on PATH)
//	NEXUS_E2E_BINARY        use this nexus binary instead of building one
//	NEXUS_UI_BASE_IP        node IP prefix (default "127.0.19."; nodes are .11, .12, ...)
//	NEXUS_UI_SCREENSHOTS=1  write the screenshots the tests take to docs/ui/*.png
//	NEXUS_UI_BENCH=1        run TestConsole_TenThousandInstances (docs/benchmarks.md)
//
// Their addresses and ports differ from internal/e2e's, so both can run at
// the same time.
package e2e
