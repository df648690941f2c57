# The cluster's controllers (modules/eks_addons), applied after envs/prod, from its output addon_inputs:
#   terraform -chdir=infra/terraform/envs/prod output -json addon_inputs > infra/terraform/envs/prod-addons/prod.auto.tfvars.json
#   terraform -chdir=infra/terraform/envs/prod-addons init -backend-config=backend.hcl && ... apply
# A root of its own because the helm provider is configured from the cluster envs/prod creates (a provider
# cannot depend on a resource of its own configuration's first apply), and so envs/prod needs only the AWS
# provider. The API endpoint is private: run it from inside the VPC (CI runner, bastion or VPN).

module "eks_addons" {
  source = "../../modules/eks_addons"

  cluster_name                 = var.cluster_name
  region                       = var.region
  vpc_id                       = var.vpc_id
  karpenter_interruption_queue = var.karpenter_interruption_queue
  secret_arns                  = var.secret_arns
  kms_key_arn                  = var.kms_key_arn
  collector_config             = file("${path.root}/../../../../deploy/otel-collector/config.yaml")
  tags                         = local.tags
}

locals {
  tags = {
    project     = "spot-exchange"
    environment = "prod"
    managed-by  = "terraform"
  }
}
