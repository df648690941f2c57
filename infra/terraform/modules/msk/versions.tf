terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
    # Topics are created through the Kafka protocol; the environment configures this provider against the
    # cluster's IAM listener (envs/prod/main.tf).
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.8"
    }
  }
}
