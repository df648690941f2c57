# State lives in S3 with a lock file; bucket, key and region are given at init, not in code:
#   terraform init -backend-config=backend.hcl   (backend.hcl.example; see deploy/README.md)
# Kept in its own file so offline checks can load the configuration without AWS (tests/deploy).
terraform {
  backend "s3" {}
}
