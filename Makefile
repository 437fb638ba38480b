# Convenience targets; the test command is `bash scripts/test.sh` (see README).
CHARMS := seaweedfs mlflow-tracking cratedb

.PHONY: test try pack clean-pack

test:
	bash scripts/test.sh

try:
	bash scripts/try.sh

# Needs charmcraft (snap, Ubuntu with LXD); writes charms/<name>/<name>_amd64.charm,
# which bundle.yaml points at.
pack:
	@for charm in $(CHARMS); do \
		(cd charms/$$charm && charmcraft pack && mv -f $${charm}_*amd64*.charm $${charm}_amd64.charm) || exit 1; \
	done

clean-pack:
	rm -f charms/*/*.charm
