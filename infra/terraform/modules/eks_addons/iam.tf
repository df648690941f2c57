# Pod Identity for the controllers this module installs: one role each, trusted by EKS Pod Identity only,
# bound to the controller's ServiceAccount. (Karpenter's and KEDA's roles live in modules/eks and
# modules/iam, next to what they read.)

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  account   = data.aws_caller_identity.current.account_id
  ec2       = "arn:${local.partition}:ec2:${var.region}:${local.account}"
  elb       = "arn:${local.partition}:elasticloadbalancing:${var.region}:${local.account}"
  # what the controller creates and changes: its ALBs' security groups, load balancers, listeners, rules
  elb_owned = ["${local.elb}:loadbalancer/*", "${local.elb}:targetgroup/*/*", "${local.elb}:listener/*", "${local.elb}:listener-rule/*"]
  # namespace and ServiceAccount of each controller with a role; the releases below name them the same
  pod_identities = {
    aws-load-balancer-controller = { namespace = "kube-system", service_account = "aws-load-balancer-controller" }
    external-secrets             = { namespace = "external-secrets", service_account = "external-secrets" }
    adot-collector               = { namespace = "observability", service_account = "adot-collector" }
  }
}

data "aws_iam_policy_document" "pod_identity_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
  }
}

# --- AWS Load Balancer Controller: the ALB Ingresses and the NLB TargetGroupBinding ---------------------
# Reads are account-wide (the API has no resource scope for Describe*); everything that changes a load
# balancer, target group, rule or security group is limited to what the controller tagged with its
# cluster (elbv2.k8s.aws/cluster), as the controller's published policy does.

data "aws_iam_policy_document" "load_balancer_controller" {
  #checkov:skip=CKV_AWS_356:the Describe/Get statement: EC2 and ELB describe calls take no resource ARN; every change is scoped
  statement {
    sid       = "CreateServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account}:role/aws-service-role/elasticloadbalancing.amazonaws.com/*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["elasticloadbalancing.amazonaws.com"]
    }
  }

  statement {
    sid = "Describe"
    actions = [
      "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeCoipPools", "ec2:DescribeIpamPools",
      "ec2:DescribeRouteTables", "ec2:GetCoipPoolUsage", "ec2:GetSecurityGroupsForVpc",
      "elasticloadbalancing:Describe*", "acm:ListCertificates",
    ]
    resources = ["*"]
  }

  # the ALB's listener certificate, found by the Ingress host (WAF and Shield are off in the release)
  statement {
    sid       = "ReadCertificates"
    actions   = ["acm:DescribeCertificate"]
    resources = ["arn:${local.partition}:acm:${var.region}:${local.account}:certificate/*"]
  }

  statement {
    sid       = "CreateOwnSecurityGroups"
    actions   = ["ec2:CreateSecurityGroup"]
    resources = ["${local.ec2}:security-group/*", "${local.ec2}:vpc/${var.vpc_id}"]
  }

  statement {
    sid       = "TagSecurityGroupsAtCreation"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2}:security-group/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["CreateSecurityGroup"]
    }
  }

  statement {
    sid       = "ChangeOwnSecurityGroups"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup", "ec2:CreateTags", "ec2:DeleteTags"]
    resources = ["${local.ec2}:security-group/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = [var.cluster_name]
    }
  }

  statement {
    sid       = "CreateTaggedLoadBalancers"
    actions   = ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:AddTags"]
    resources = local.elb_owned
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/elbv2.k8s.aws/cluster"
      values   = [var.cluster_name]
    }
  }

  statement {
    sid = "ChangeOwnLoadBalancers"
    actions = [
      "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyListener",
      "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:AddListenerCertificates",
      "elasticloadbalancing:RemoveListenerCertificates", "elasticloadbalancing:ModifyRule",
      "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
      "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
      "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
    ]
    resources = local.elb_owned
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/elbv2.k8s.aws/cluster"
      values   = [var.cluster_name]
    }
  }

  # The gateway's NLB target group is Terraform's (modules/apigateway), bound by the chart's
  # TargetGroupBinding: the controller registers pod IPs in it without owning it.
  statement {
    sid       = "RegisterTargets"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = ["${local.elb}:targetgroup/*/*"]
  }
}

# --- External Secrets: the secrets the fleet's DSNs are built from and its service key, nothing else ---------

data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid       = "ReadFleetSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = var.secret_arns
  }

  statement {
    sid       = "DecryptThroughSecretsManager"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }
}

# --- ADOT collector: traces to X-Ray, metrics to CloudWatch as EMF log events -----------------------------

data "aws_iam_policy_document" "adot_collector" {
  statement {
    sid = "SendTraces"
    actions = [
      "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
      "xray:GetSamplingStatisticSummaries",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "WriteMetricLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/spot-exchange/${var.cluster_name}/*"]
  }
}

locals {
  pod_identity_policies = {
    aws-load-balancer-controller = data.aws_iam_policy_document.load_balancer_controller.json
    external-secrets             = data.aws_iam_policy_document.external_secrets.json
    adot-collector               = data.aws_iam_policy_document.adot_collector.json
  }
}

resource "aws_iam_role" "controller" {
  for_each = local.pod_identities

  name               = "${var.cluster_name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "controller" {
  for_each = local.pod_identities

  name   = each.key
  role   = aws_iam_role.controller[each.key].id
  policy = local.pod_identity_policies[each.key]
}

resource "aws_eks_pod_identity_association" "controller" {
  for_each = local.pod_identities

  cluster_name    = var.cluster_name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.controller[each.key].arn
  tags            = var.tags
}
