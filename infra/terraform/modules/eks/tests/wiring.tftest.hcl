# The cluster's first apply comes up: the add-ons a node needs exist before the node group, every node
# (system and Karpenter's) carries the one shared security group, and Karpenter finds it by its tag.
# Run offline: terraform test with the AWS provider mocked (tests/deploy/test_terraform.py).

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111122223333" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:111122223333:mock" }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:eu-west-1:111122223333:cluster/mock"
      certificate_authority = [{ data = "bW9jaw==" }]
    }
  }
  mock_resource "aws_launch_template" {
    defaults = { id = "lt-0123456789abcdef0" }
  }
  mock_resource "aws_iam_instance_profile" {
    defaults = { arn = "arn:aws:iam::111122223333:instance-profile/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:mock" }
  }
}

variables {
  name                   = "spot-test"
  vpc_id                 = "vpc-0123456789abcdef0"
  private_subnet_ids     = ["subnet-a", "subnet-b", "subnet-c"]
  kms_key_arn            = "arn:aws:kms:eu-west-1:111122223333:key/test"
  admin_principal_arns   = []
  keda_operator_role_arn = "arn:aws:iam::111122223333:role/keda"
}

run "addons_a_node_needs_come_before_the_node_group" {
  command = apply

  assert {
    condition     = toset(keys(aws_eks_addon.before_compute)) == toset(["vpc-cni", "eks-pod-identity-agent", "kube-proxy"])
    error_message = "the VPC CNI, Pod Identity agent and kube-proxy must be created before the node group"
  }

  assert {
    condition     = toset(keys(aws_eks_addon.this)) == toset(["coredns", "metrics-server"])
    error_message = "CoreDNS and metrics-server come after the node group (they run as pods)"
  }

  assert {
    condition     = aws_eks_cluster.this.bootstrap_self_managed_addons == false
    error_message = "the cluster is created without self-managed add-ons, so the managed ones must be installed"
  }
}

run "every_node_shares_one_security_group_that_karpenter_discovers" {
  command = apply

  assert {
    condition     = aws_launch_template.system.vpc_security_group_ids == toset([aws_security_group.cluster.id])
    error_message = "the system nodes must carry the shared node security group"
  }

  assert {
    condition     = aws_security_group.cluster.tags["karpenter.sh/discovery"] == var.name
    error_message = "Karpenter's EC2NodeClass finds the shared group by karpenter.sh/discovery = cluster name"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.cluster_self.referenced_security_group_id == aws_security_group.cluster.id && aws_vpc_security_group_ingress_rule.cluster_self.ip_protocol == "-1"
    error_message = "nodes on the shared group must reach each other on every port (CoreDNS, metrics-server, Prometheus)"
  }

  assert {
    condition     = contains(aws_eks_cluster.this.vpc_config[0].security_group_ids, aws_security_group.cluster.id)
    error_message = "the control plane must carry the shared group to reach kubelets and webhooks"
  }

  assert {
    condition     = output.cluster_security_group_id == aws_security_group.cluster.id
    error_message = "the data stores admit the group every node carries"
  }
}
