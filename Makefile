# kproxy build.  `make` builds build/kproxy; `make test` runs every test;
# `make demo` shows it working; `make deps` installs what building and testing
# need (idempotent, quiet when everything is there).  V=1 shows the commands.

BUILD   ?= build
CC      ?= gcc
CLANG   ?= clang
BPFTOOL ?= bpftool
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

PKGS    := libnftnl libmnl libcurl jansson yaml-0.1 libbpf libmicrohttpd libnetfilter_conntrack
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
BASE_CFLAGS := -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -Iproxy -Iinclude -I$(BUILD)/bpf \
	-DKPROXY_VERSION='"$(VERSION)"'
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  ?=
LDFLAGS ?=
ALL_CFLAGS = $(BASE_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
LDLIBS  = $(PKG_LIBS) -lelf -lz

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

PROXY_SRCS := $(shell find proxy -name '*.c' | sort)
LIB_SRCS   := $(filter-out proxy/main.c,$(PROXY_SRCS))
LIB_OBJS   := $(patsubst proxy/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
SAN_OBJS   := $(patsubst proxy/%.c,$(BUILD)/san/%.o,$(LIB_SRCS))
BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRCS))
UNIT_SRCS  := $(wildcard test/unit/test_*.c)
UNIT_BINS  := $(patsubst test/unit/%.c,$(BUILD)/test/unit/%,$(UNIT_SRCS))
UNIT_SAN   := $(patsubst test/unit/%.c,$(BUILD)/test/unit-san/%,$(UNIT_SRCS))
BPFT_SRCS  := $(wildcard test/bpf/test_*.c)
BPFT_BINS  := $(patsubst test/bpf/%.c,$(BUILD)/test/bpf/%,$(BPFT_SRCS))
TOOLS      := $(BUILD)/test/echod $(BUILD)/test/probe

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all deps test unit demo clean format format-check bpf tools check-env

all: $(BUILD)/kproxy $(TOOLS)

# --- dependencies -----------------------------------------------------------

DEPS := gcc make clang llvm pkg-config libnftnl-dev libmnl-dev libbpf-dev bpftool \
	libcurl4-openssl-dev libjansson-dev libyaml-dev libmicrohttpd-dev \
	libnetfilter-conntrack-dev libelf-dev zlib1g-dev libclang-rt-14-dev nftables iproute2 \
	iptables conntrack openssl curl python3 util-linux procps

deps:
	$(Q)missing=$$(for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if ! command -v kubectl >/dev/null 2>&1; then missing="$$missing kubernetes-client"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

# --- the agent --------------------------------------------------------------

$(BUILD)/kproxy: $(BUILD)/obj/main.o $(BUILD)/libkproxy.a
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libkproxy.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libkproxy-san.a: $(SAN_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/%.o: proxy/%.c | $(SKELS)
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/san/%.o: proxy/%.c | $(SKELS)
	$(call msg,CC-SAN,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -MMD -MP -c $< -o $@

# --- BPF: vmlinux.h from the running kernel, objects, skeletons -------------

bpf: $(SKELS)

$(BUILD)/bpf/vmlinux.h:
	$(call msg,BTF,$@)
	$(Q)mkdir -p $(@D) && $(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/bpf/%.tmp.bpf.o: bpf/%.bpf.c $(BUILD)/bpf/vmlinux.h $(wildcard bpf/*.bpf.h include/kproxy/*.h)
	$(call msg,BPF,$<)
	$(Q)$(CLANG) -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I$(BUILD)/bpf -Iinclude \
		-c $< -o $@

$(BUILD)/bpf/%.bpf.o: $(BUILD)/bpf/%.tmp.bpf.o
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $<

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

# --- test tools and tests ---------------------------------------------------

tools: $(TOOLS)

$(BUILD)/test/%: test/tools/%.c
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -o $@ $<

$(BUILD)/test/unit/%: test/unit/%.c test/unit/unit.h $(BUILD)/libkproxy.a
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -Itest/unit -o $@ $< $(BUILD)/libkproxy.a $(LDLIBS)

$(BUILD)/test/unit-san/%: test/unit/%.c test/unit/unit.h $(BUILD)/libkproxy-san.a
	$(call msg,CC-SAN,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -Itest/unit -o $@ $< \
		$(BUILD)/libkproxy-san.a $(LDLIBS)

$(BUILD)/test/bpf/%: test/bpf/%.c test/unit/unit.h $(SKELS) $(BUILD)/libkproxy.a
	$(call msg,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -Itest/unit -o $@ $< $(BUILD)/libkproxy.a $(LDLIBS)

unit: $(UNIT_BINS) $(UNIT_SAN)

# Everything: unit tests (plain and sanitized), BPF program tests, the API
# emulator's and the sandbox's own tests, and the end-to-end suite.
test: deps
	$(Q)$(MAKE) --no-print-directory all unit $(BPFT_BINS)
	$(Q)test/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)python3 test/demo.py

# --- housekeeping -----------------------------------------------------------

FORMAT_SRCS = $(shell find proxy bpf include test/unit test/bpf test/tools -name '*.[ch]' 2>/dev/null)

format:
	$(Q)clang-format -i $(FORMAT_SRCS)

format-check:
	$(Q)clang-format --dry-run -Werror $(FORMAT_SRCS)

clean:
	$(Q)rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/san -name '*.d' 2>/dev/null)

# libFuzzer targets: make fuzz, fuzz-build, fuzz-smoke (test/fuzz/README.md).
include test/fuzz/fuzz.mk

# make bench (test/bench/bench.mk).
include test/bench/bench.mk
