# Make targets for the monorepo's habits, on top of cargo xtask. Include it from a Makefile:
#
#   include path/to/manifests/make/xtask.mk
#
#   make test-e2e-workflowexecution   # cargo xtask e2e workflowexecution
#   make migrate                      # cargo xtask migrate --all
#   make migrate-lint                 # cargo xtask migrate lint
#   make infra-down                   # cargo xtask infra down --all
#
# XTASK_FLAGS passes flags through, e.g. make test-e2e-workflowexecution XTASK_FLAGS='--backend kind'.
# Exit statuses are cargo xtask's own (see README: 0 ok, 1 failed, 2 bad input, 3 tests failed).

XTASK ?= cargo xtask
XTASK_FLAGS ?=

.PHONY: migrate migrate-lint migrate-status infra-down

test-e2e-%:
	$(XTASK) e2e $* $(XTASK_FLAGS)

migrate:
	$(XTASK) migrate --all $(XTASK_FLAGS)

migrate-lint:
	$(XTASK) migrate lint $(XTASK_FLAGS)

migrate-status:
	$(XTASK) migrate status $(XTASK_FLAGS)

infra-down:
	$(XTASK) infra down --all
