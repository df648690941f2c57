terraform {
  required_version = ">= 1.9"

  # Only the AWS provider: topics are made by the chart's init Job (`spot admin init`), the Lambda's zip by
  # `spot deploy lambda-package`, the Helm releases from envs/prod-addons. So this root validates offline
  # with the provider mirror alone (tests/deploy/test_terraform.py).
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}
