module kubecs.dev/e2e/loadgen

go 1.22
