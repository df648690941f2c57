# Order ingestion as an AWS Lambda (the design's "Lambda (Order Ingestion)"): the handler
# services.ingestion.lambda_handler.handler turns a request into the canonical order message and
# publishes it to order-requests, exactly as the ingestion service does on EKS. The zip is built before
# Terraform runs (`spot deploy lambda-package`: services/ and shared/ only; third-party packages come in
# layers) and named by package_path. It runs in the VPC, reaching MSK over IAM and, to check API keys and
# client order ids, Aurora and ElastiCache with the credentials it reads from Secrets Manager at a cold
# start (DATABASE_SECRET_ARN, REDIS_AUTH_SECRET_ARN); traced by X-Ray, with capped concurrency and a
# dead-letter queue.

resource "aws_security_group" "this" {
  name        = "${var.name}-lambda"
  description = "Order ingestion Lambda of ${var.name}"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

# Egress only to what the handler calls: the brokers, the database and the cache by their security groups
# (each admits this group in turn), and HTTPS for STS, Secrets Manager and X-Ray.
locals {
  egress = {
    kafka    = { port = 9098, security_group_id = var.msk_security_group_id, description = "MSK IAM listener" }
    postgres = { port = var.database_port, security_group_id = var.database_security_group_id, description = "Aurora (API keys)" }
    redis    = { port = var.redis_port, security_group_id = var.redis_security_group_id, description = "ElastiCache (client order ids)" }
  }
}

resource "aws_vpc_security_group_egress_rule" "dependency" {
  for_each = local.egress

  security_group_id            = aws_security_group.this.id
  description                  = each.value.description
  referenced_security_group_id = each.value.security_group_id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.this.id
  description       = "AWS APIs (STS for IAM auth, Secrets Manager, X-Ray)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sqs_queue" "dead_letter" {
  name                      = "${var.name}-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "ConnectToCluster"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
    resources = [var.msk_cluster_arn]
  }

  # ingestion checks the fleet's identity record before it publishes (shared/identity.py)
  statement {
    sid       = "ReadFleetIdentity"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = [var.fleet_identity_topic_arn]
  }

  statement {
    sid       = "ProduceOrderRequests"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    resources = [var.order_requests_topic_arn]
  }

  statement {
    sid       = "ReadDependencyCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.database_secret_arn, var.redis_auth_token_secret_arn]
  }

  # Aurora's secret under a customer key: decrypted by Secrets Manager for that secret only. Read at a cold
  # start and again when Postgres refuses the password after a rotation (DATABASE_SECRET_ARN, shared/dbsecret.py).
  dynamic "statement" {
    for_each = var.database_secret_kms_key_arn == null ? [] : [var.database_secret_kms_key_arn]
    content {
      sid       = "DecryptDatabaseSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${data.aws_region.current.name}.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "kms:EncryptionContext:SecretARN"
        values   = [var.database_secret_arn]
      }
    }
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letter.arn]
  }

  # an API key's HMAC secret is sealed under this key; the handler only opens them (shared/envelope.py:
  # Decrypt), always with their encryption context
  statement {
    sid       = "OpenApiSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.api_secrets_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:purpose"
      values   = ["spot-api-secret"]
    }
  }

  statement {
    sid       = "DecryptEnvironment"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name}-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "order-ingestion"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

# Network interfaces in the VPC and X-Ray segments cannot be scoped to a resource ARN; AWS's managed
# policies grant exactly those actions.
data "aws_partition" "current" {}
data "aws_region" "current" {}

resource "aws_iam_role_policy_attachment" "managed" {
  for_each = toset(["service-role/AWSLambdaVPCAccessExecutionRole", "AWSXRayDaemonWriteAccess"])

  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

resource "aws_lambda_function" "this" {
  function_name                  = var.name
  description                    = "Order ingestion: request -> canonical order -> order-requests"
  role                           = aws_iam_role.this.arn
  runtime                        = "python3.11"
  architectures                  = ["x86_64"]
  handler                        = var.handler
  filename                       = var.package_path
  source_code_hash               = filebase64sha256(var.package_path)
  layers                         = var.dependency_layer_arns
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = {
      KAFKA_BOOTSTRAP         = var.kafka_bootstrap
      KAFKA_PARTITIONS        = tostring(var.kafka_partitions)
      KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
      KAFKA_SASL_MECHANISM    = "OAUTHBEARER"
      LOG_LEVEL               = "INFO"
      # ingestion's own database role (migration 0010): markets, API keys, order-id blocks; no balances, no orders
      DATABASE_ROLE = "spot_ingestion"
      # the handler builds DATABASE_URL and REDIS_URL from these at a cold start (never in the environment)
      DATABASE_SECRET_ARN   = var.database_secret_arn
      DATABASE_HOST         = var.database_host
      DATABASE_PORT         = tostring(var.database_port)
      DATABASE_NAME         = var.database_name
      REDIS_AUTH_SECRET_ARN = var.redis_auth_token_secret_arn
      REDIS_HOST            = var.redis_host
      REDIS_PORT            = tostring(var.redis_port)
      REDIS_CLUSTER         = tostring(var.redis_cluster)
      # the KEK of the API secrets, the same key the gateway and spot admin use
      KMS_KEY_ID = var.api_secrets_kms_key_arn
    }
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.this.id]
  }

  tracing_config {
    mode = "Active"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letter.arn
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this.name
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this, aws_iam_role_policy_attachment.managed]
}
