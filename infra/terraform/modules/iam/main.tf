# Least-privilege IAM for the fleet, one role per service (EKS Pod Identity, one service account each):
# a service may connect to MSK, read only the topics it consumes with only its own consumer group, and
# write only the topics it produces; every one reads the fleet's identity record (topic spot.fleet,
# shared/identity.py) before it serves, and Aurora's rotated credentials (the one database secret, and its
# KMS key only through Secrets Manager for that secret: shared/dbsecret.py, DATABASE_SECRET_ID), as the
# init job does. The gateway may open the API keys' secrets (kms:Decrypt) and the
# init job's pod (spot admin, migration 0009) seal them too (kms:GenerateDataKey), with the API secrets' KMS
# key only and only with its encryption context (shared/envelope.py). trade-archiver alone may put to Kinesis and write the archive
# bucket's trades/ (Parquet) and manifests/ (its commit records) prefixes. The init job may create and
# describe topics; the KEDA operator may only describe groups and topics to read lag.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  kafka_arn_prefix = "arn:${data.aws_partition.current.partition}:kafka:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  topic_arn        = "${local.kafka_arn_prefix}:topic/${var.msk_cluster_name}/${var.msk_cluster_uuid}"
  group_arn        = "${local.kafka_arn_prefix}:group/${var.msk_cluster_name}/${var.msk_cluster_uuid}"
  # One record naming the fleet (shared/identity.py): `spot admin init` writes it, every service reads it.
  fleet_identity_topic_arn = "${local.topic_arn}/spot.fleet"
  # The API secrets' encryption context (shared/envelope.py KMS_CONTEXT): KMS refuses a call without it.
  api_secret_context = { purpose = "spot-api-secret" }
  # Secrets Manager decrypts a secret with its KMS key on the caller's behalf, naming the secret in the
  # encryption context: the grant holds for that secret only, and only through Secrets Manager.
  database_secret_decrypt = var.database_secret_kms_key_arn == null ? [] : [{
    key         = var.database_secret_kms_key_arn
    via_service = "secretsmanager.${data.aws_region.current.name}.amazonaws.com"
  }]
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

data "aws_iam_policy_document" "service" {
  for_each = var.topic_access

  statement {
    sid       = "ConnectToCluster"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.msk_cluster_arn]
  }

  # Aurora's credentials, read at start and again after a rotation (shared/dbsecret.py)
  statement {
    sid       = "ReadDatabaseSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.database_secret_arn]
  }

  dynamic "statement" {
    for_each = local.database_secret_decrypt
    content {
      sid       = "DecryptDatabaseSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value.key]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [statement.value.via_service]
      }
      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:SecretARN"
        values   = [var.database_secret_arn]
      }
    }
  }

  statement {
    sid       = "ReadFleetIdentity"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = [local.fleet_identity_topic_arn]
  }

  dynamic "statement" {
    for_each = length(each.value.read) > 0 ? [1] : []
    content {
      sid       = "ConsumeOwnTopics"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
      resources = [for topic in each.value.read : "${local.topic_arn}/${topic}"]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.read) > 0 ? [1] : []
    content {
      sid       = "UseOwnConsumerGroup"
      actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
      resources = ["${local.group_arn}/${each.key}", "${local.group_arn}/${each.key}-*"]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.write) > 0 ? [1] : []
    content {
      sid       = "ProduceOwnTopics"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
      resources = [for topic in each.value.write : "${local.topic_arn}/${topic}"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "gateway" ? [1] : []
    content {
      sid       = "OpenApiSecrets"
      actions   = ["kms:Decrypt"]
      resources = [var.api_secrets_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:purpose"
        values   = [local.api_secret_context.purpose]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "trade-archiver" ? [1] : []
    content {
      sid       = "PutTradesToKinesis"
      actions   = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary"]
      resources = [var.kinesis_stream_arn]
    }
  }

  # Data files are written and, when a range cut again after a crash writes fewer, deleted; manifests
  # (the commit records, outside the Glue table's trades/ location) are written, read, listed, deleted.
  dynamic "statement" {
    for_each = each.key == "trade-archiver" ? [1] : []
    content {
      sid       = "WriteTradeParquet"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = ["${var.archive_bucket_arn}/trades/*"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "trade-archiver" ? [1] : []
    content {
      sid       = "KeepArchiveManifests"
      actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
      resources = ["${var.archive_bucket_arn}/manifests/*"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "trade-archiver" ? [1] : []
    content {
      sid       = "ListArchiveManifests"
      actions   = ["s3:ListBucket"]
      resources = [var.archive_bucket_arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["manifests/*"]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "trade-archiver" ? [1] : []
    content {
      sid       = "EncryptArchive"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role" "service" {
  for_each = var.topic_access

  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
  tags               = merge(var.tags, { service = each.key })
}

resource "aws_iam_role_policy" "service" {
  for_each = var.topic_access

  name   = "least-privilege"
  role   = aws_iam_role.service[each.key].id
  policy = data.aws_iam_policy_document.service[each.key].json
}

resource "aws_eks_pod_identity_association" "service" {
  for_each = var.topic_access

  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = "${var.service_account_prefix}-${each.key}"
  role_arn        = aws_iam_role.service[each.key].arn
  tags            = var.tags
}

# --- init job: `spot admin init` creates the topics and stamps the fleet's identity in the broker; ------
# --- `spot admin` run in its pod seals API secrets -------------------------------------------------------

data "aws_iam_policy_document" "init" {
  statement {
    sid       = "ConnectToCluster"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.msk_cluster_arn]
  }

  # Aurora's credentials, read at start and again after a rotation (shared/dbsecret.py)
  statement {
    sid       = "ReadDatabaseSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.database_secret_arn]
  }

  dynamic "statement" {
    for_each = local.database_secret_decrypt
    content {
      sid       = "DecryptDatabaseSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value.key]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [statement.value.via_service]
      }
      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:SecretARN"
        values   = [var.database_secret_arn]
      }
    }
  }

  statement {
    sid       = "EnsureTopics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:CreateTopic"]
    resources = ["${local.topic_arn}/*"]
  }

  statement {
    sid       = "StampFleetIdentity"
    actions   = ["kafka-cluster:ReadData", "kafka-cluster:WriteData"]
    resources = [local.fleet_identity_topic_arn]
  }

  statement {
    sid       = "SealAndOpenApiSecrets"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.api_secrets_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:purpose"
      values   = [local.api_secret_context.purpose]
    }
  }
}

resource "aws_iam_role" "init" {
  name               = "${var.name}-init"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "init" {
  name   = "ensure-topics"
  role   = aws_iam_role.init.id
  policy = data.aws_iam_policy_document.init.json
}

resource "aws_eks_pod_identity_association" "init" {
  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = "${var.service_account_prefix}-init"
  role_arn        = aws_iam_role.init.arn
  tags            = var.tags
}

# --- KEDA operator: read consumer lag, nothing else -------------------------------------------------

data "aws_iam_policy_document" "keda" {
  statement {
    sid       = "ConnectToCluster"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid       = "ReadLag"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:DescribeGroup"]
    resources = ["${local.topic_arn}/*", "${local.group_arn}/*"]
  }
}

resource "aws_iam_role" "keda" {
  name               = "${var.name}-keda-operator"
  assume_role_policy = data.aws_iam_policy_document.pod_identity_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "keda" {
  name   = "read-consumer-lag"
  role   = aws_iam_role.keda.id
  policy = data.aws_iam_policy_document.keda.json
}
