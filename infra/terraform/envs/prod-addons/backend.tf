# State in S3 beside envs/prod's (another key): terraform init -backend-config=backend.hcl.
terraform {
  backend "s3" {}
}
