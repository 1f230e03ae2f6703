# The benchmark; included by the top-level Makefile, whose variables (BUILD,
# CC, ALL_CFLAGS, LDLIBS, Q, msg, TOOLS) it uses.
#
#   make bench                      N = 1k, 10k, 30k Services (about 40 minutes)
#   BENCH_SCALE=quick make bench    N = 1k, 5k (a few minutes)
#   make bench-build                only build what the benchmark runs
#
# Other knobs (environment): BENCH_RUNS (runs per figure, default 3),
# BENCH_SERVICES (e.g. 1000,2000), BENCH_ENDPOINTS (default 10),
# BENCH_CHANGES, BENCH_ANCHOR_CAP (seconds one ruleset load may take),
# BENCH_SKIP (any of dataplane,nftables,ebpf,changes,anchors,datapath).
# Results: a Markdown table on stdout, $(BUILD)/bench/results.json,
# $(BUILD)/bench/sync.svg and $(BUILD)/bench/summary.md.  Needs root.

BENCH_DIR   := $(BUILD)/bench
BENCH_TOOLS := $(BENCH_DIR)/nftwatch $(BENCH_DIR)/connbench $(BENCH_DIR)/bench_nft \
	$(BENCH_DIR)/bench_decode

.PHONY: bench bench-build

# bpfwatch reads the eBPF dataplane's map layouts (include/kproxy/lb.h); when
# they do not compile, the eBPF rows are skipped instead of failing the build.
bench-build: $(BUILD)/kproxy $(TOOLS) $(BENCH_TOOLS)
	$(Q)$(CC) $(ALL_CFLAGS) -o $(BENCH_DIR)/bpfwatch test/bench/bpfwatch.c $(LDLIBS) \
		2>/dev/null || { rm -f $(BENCH_DIR)/bpfwatch; \
		echo "  (bpfwatch did not build: eBPF rows will be skipped)"; }

bench: deps
	$(Q)$(MAKE) --no-print-directory bench-build
	$(Q)BUILD=$(BUILD) python3 test/bench/bench.py

$(BENCH_DIR)/bench_nft: test/bench/bench_nft.c $(BUILD)/libkproxy.a
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkproxy.a $(LDLIBS)

$(BENCH_DIR)/bench_decode: test/bench/bench_decode.c $(BUILD)/libkproxy.a
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkproxy.a $(LDLIBS)

$(BENCH_DIR)/nftwatch: test/bench/nftwatch.c
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -o $@ $< $(LDLIBS)

$(BENCH_DIR)/connbench: test/bench/connbench.c
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -o $@ $<
