# libFuzzer targets for the API client's parsers; included by the top-level
# Makefile, whose variables (BUILD, ALL_CFLAGS, LDLIBS, CLANG, Q, msg,
# LIB_SRCS) it uses.
#
#   make fuzz-build                  build every target into $(BUILD)/fuzz/
#   make fuzz [FUZZ_SECONDS=300]     run each target that long
#   make fuzz FUZZ_TARGETS=fuzz_yaml run some targets only
#   make fuzz-smoke                  replay the corpora, then ~10 s per target
#
# The agent's API client, model and utility sources are compiled again with
# clang, coverage and ASan/UBSan into $(BUILD)/fuzz/obj/, apart from the gcc
# objects.  Seeds (and every crash
# found, kept as a regression input) live in test/fuzz/corpus/<target>/;
# inputs a run discovers go to $(BUILD)/fuzz/corpus/<target>/ and crashes to
# $(BUILD)/fuzz/crashes/<target>/.

FUZZ_SECONDS       ?= 300
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_ALL           := fuzz_decode fuzz_watch fuzz_kubeconfig fuzz_yaml
FUZZ_TARGETS       ?= $(FUZZ_ALL)
FUZZ_BINS          := $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_ALL))
# The parsers and the model need only these; the dataplanes stay out, so the
# fuzz build does not depend on the BPF skeletons.
FUZZ_SRCS          := $(filter proxy/kube/% proxy/model/% proxy/util/%,$(LIB_SRCS))
FUZZ_OBJS          := $(patsubst proxy/%.c,$(BUILD)/fuzz/obj/%.o,$(FUZZ_SRCS))
FUZZ_SAN           := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
# clang warns where gcc does not about `{a, b}` initializers that leave the
# remaining fields zero, an idiom the sources use on purpose.
FUZZ_CFLAGS        = $(ALL_CFLAGS) $(FUZZ_SAN) -Wno-missing-field-initializers

.PHONY: fuzz-build fuzz fuzz-smoke

fuzz-build: $(FUZZ_BINS)

$(BUILD)/fuzz/obj/%.o: proxy/%.c
	$(call msg,CC-FUZZ,$<)
	$(Q)mkdir -p $(@D) && $(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP \
		-c $< -o $@

$(BUILD)/fuzz/libkproxy-fuzz.a: $(FUZZ_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz/%: test/fuzz/%.c $(BUILD)/fuzz/libkproxy-fuzz.a
	$(call msg,FUZZ-LD,$@)
	$(Q)mkdir -p $(@D) && $(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(BUILD)/fuzz/libkproxy-fuzz.a $(LDLIBS)

# Longest input per target: a few objects for the decoders, a stream of
# many lines (some past the 4 KiB line limit of the target) for the watch.
FUZZ_MAX_LEN_fuzz_decode     := 16384
FUZZ_MAX_LEN_fuzz_watch      := 65536
FUZZ_MAX_LEN_fuzz_kubeconfig := 8192
FUZZ_MAX_LEN_fuzz_yaml       := 8192

# One target's long run; the shell variable "failed" collects the ones that
# crashed, so that every target runs even after one of them failed.
define fuzz_run
	echo "  FUZZ     $(1) for $(FUZZ_SECONDS)s"; \
	mkdir -p $(BUILD)/fuzz/corpus/$(1) $(BUILD)/fuzz/crashes/$(1) && \
	$(BUILD)/fuzz/$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN_$(1)) \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -dict=test/fuzz/dict/$(1).dict \
		-artifact_prefix=$(BUILD)/fuzz/crashes/$(1)/ \
		$(BUILD)/fuzz/corpus/$(1) test/fuzz/corpus/$(1) || failed="$$failed $(1)";
endef

fuzz: fuzz-build
	$(Q)failed=""; \
	$(foreach t,$(FUZZ_TARGETS),$(call fuzz_run,$(t))) \
	if [ -n "$$failed" ]; then \
		echo "fuzz: crashes in$$failed; inputs in $(BUILD)/fuzz/crashes/"; exit 1; \
	fi

fuzz-smoke: fuzz-build
	$(Q)BUILD=$(BUILD) FUZZ_SMOKE_SECONDS=$(FUZZ_SMOKE_SECONDS) \
		FUZZ_MAX_LEN="$(foreach t,$(FUZZ_ALL),$(t)=$(FUZZ_MAX_LEN_$(t)))" \
		bash test/fuzz/smoke.sh $(FUZZ_TARGETS)

-include $(shell find $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
