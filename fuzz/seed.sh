#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the repository's own files (run from anywhere; idempotent).
# The corpora libFuzzer grows from these are not checked in; fuzz/regressions/<target>/ holds
# the inputs that once failed, which seed every run too.
set -eu
cd "$(dirname "$0")/.."
out=fuzz/corpus

mkdir -p "$out/goose_parse" "$out/suite_parse" "$out/yaml_locate"

for f in migrations/*.sql; do
    cp "$f" "$out/goose_parse/$(basename "$f")"
done

for f in manifests/suites/*.yaml; do
    name=$(basename "$f" .yaml)
    cp "$f" "$out/suite_parse/$name.yaml"
    # The target loads its input as fuzz.yaml: a seed named `fuzz` gets past the name check
    # into the validation of components, images, builds and the controller.
    sed 's/^name: .*/name: fuzz/' "$f" >"$out/suite_parse/$name-as-fuzz.yaml"
done

# Small YAML only: the Tekton release and the OpenAPI document would slow every execution.
find manifests fixtures crates/wait/tests/fixtures .github -name '*.yaml' -size -64k | sort |
    while read -r f; do
        seed=$(echo "$f" | tr / _)
        for path in name components[1] test.command[0] metadata.name spec.template.spec.containers[0].image; do
            { echo "$path"; cat "$f"; } >"$out/yaml_locate/$seed-$path"
        done
    done

for target in goose_parse suite_parse yaml_locate; do
    for f in fuzz/regressions/"$target"/*; do
        if [ -f "$f" ]; then cp "$f" "$out/$target/"; fi
    done
    echo "$target: $(ls "$out/$target" | wc -l) seeds"
done
