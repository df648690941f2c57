# The ingestion Lambda can do its job and nothing more: it runs in the private subnets, its security group
# lets it out only to the brokers' IAM listener, Aurora, ElastiCache (by their groups) and HTTPS, and its
# role may read exactly the two secrets its URLs are built from. Run offline with the AWS provider mocked
# (tests/deploy/test_terraform.py).

mock_provider "aws" {
  # the document's JSON is the provider's work (mocked); the tests read its statements, which are inputs
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:111122223333:mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:mock" }
  }
}

variables {
  name                        = "spot-test-order-ingestion"
  package_path                = "tests/order-ingestion.zip"
  vpc_id                      = "vpc-0123456789abcdef0"
  subnet_ids                  = ["subnet-a", "subnet-b", "subnet-c"]
  kafka_bootstrap             = "b-1.msk:9098"
  kafka_partitions            = 12
  msk_cluster_arn             = "arn:aws:kafka:eu-west-1:111122223333:cluster/spot-test/uuid"
  msk_security_group_id       = "sg-msk"
  order_requests_topic_arn    = "arn:aws:kafka:eu-west-1:111122223333:topic/spot-test/uuid/order-requests"
  fleet_identity_topic_arn    = "arn:aws:kafka:eu-west-1:111122223333:topic/spot-test/uuid/spot.fleet"
  database_security_group_id  = "sg-aurora"
  database_secret_arn         = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-test"
  database_secret_kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/database-secret"
  database_host               = "spot-test.cluster.rds"
  database_name               = "spot"
  redis_security_group_id     = "sg-redis"
  redis_auth_token_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:spot-test/redis-auth-token"
  redis_host                  = "master.spot-test.cache"
  redis_cluster               = false
  kms_key_arn                 = "arn:aws:kms:eu-west-1:111122223333:key/test"
  api_secrets_kms_key_arn     = "arn:aws:kms:eu-west-1:111122223333:key/api-secrets"
}

run "runs_in_the_private_subnets_behind_its_own_group" {
  command = apply

  assert {
    condition     = toset(aws_lambda_function.this.vpc_config[0].subnet_ids) == toset(var.subnet_ids)
    error_message = "the function must run in the private subnets it is given"
  }

  assert {
    condition     = toset(aws_lambda_function.this.vpc_config[0].security_group_ids) == toset([aws_security_group.this.id])
    error_message = "the function must carry its own security group (the one MSK, Aurora and Redis admit)"
  }
}

run "leaves_only_for_msk_iam_aurora_redis_and_https" {
  command = apply

  assert {
    condition = {
      for k, rule in aws_vpc_security_group_egress_rule.dependency :
      k => [rule.referenced_security_group_id, rule.from_port, rule.to_port]
      } == {
      kafka    = ["sg-msk", 9098, 9098]
      postgres = ["sg-aurora", 5432, 5432]
      redis    = ["sg-redis", 6379, 6379]
    }
    error_message = "egress must reach the brokers' IAM listener (9098), Aurora (5432) and Redis (6379) by their groups"
  }

  assert {
    condition     = aws_vpc_security_group_egress_rule.https.from_port == 443 && aws_vpc_security_group_egress_rule.https.to_port == 443
    error_message = "the only egress to the internet range is HTTPS (STS, Secrets Manager, X-Ray)"
  }
}

run "connects_to_msk_and_writes_only_order_requests" {
  command = apply

  assert {
    condition = anytrue([
      for s in data.aws_iam_policy_document.this.statement :
      s.resources == toset([var.msk_cluster_arn]) && contains(s.actions, "kafka-cluster:Connect")
    ])
    error_message = "the function must be allowed kafka-cluster:Connect on the cluster"
  }

  assert {
    condition = (
      flatten([for s in data.aws_iam_policy_document.this.statement : tolist(s.resources) if contains(s.actions, "kafka-cluster:WriteData")]) == [var.order_requests_topic_arn]
      && flatten([for s in data.aws_iam_policy_document.this.statement : tolist(s.resources) if contains(s.actions, "kafka-cluster:ReadData")]) == [var.fleet_identity_topic_arn]
    )
    error_message = "the function writes order-requests and reads only the fleet's identity record"
  }
}

run "reads_exactly_its_two_secrets_and_is_told_where_they_are" {
  command = apply

  assert {
    condition = [
      for s in data.aws_iam_policy_document.this.statement : s.resources
      if anytrue([for a in s.actions : startswith(a, "secretsmanager:")])
    ] == [toset([var.database_secret_arn, var.redis_auth_token_secret_arn])]
    error_message = "one statement reads secrets: the Aurora and Redis secrets, and only those"
  }

  assert {
    condition = [
      for s in data.aws_iam_policy_document.this.statement : s.actions
      if anytrue([for a in s.actions : startswith(a, "secretsmanager:")])
    ] == [toset(["secretsmanager:GetSecretValue"])]
    error_message = "the function may only read secret values"
  }

  assert {
    condition = (
      aws_lambda_function.this.environment[0].variables.DATABASE_SECRET_ARN == var.database_secret_arn
      && aws_lambda_function.this.environment[0].variables.REDIS_AUTH_SECRET_ARN == var.redis_auth_token_secret_arn
      && aws_lambda_function.this.environment[0].variables.REDIS_CLUSTER == "false"
      && !contains(keys(aws_lambda_function.this.environment[0].variables), "DATABASE_URL")
    )
    error_message = "the handler is given the secrets' ARNs (it builds DATABASE_URL and REDIS_URL), never the URLs"
  }

  assert {
    condition     = aws_lambda_function.this.environment[0].variables.DATABASE_ROLE == "spot_ingestion"
    error_message = "the handler's connections act as ingestion's own database role (migration 0010), not as the master user"
  }

  assert {
    condition     = aws_lambda_function.this.filename == var.package_path && aws_lambda_function.this.source_code_hash == filebase64sha256(var.package_path)
    error_message = "the function deploys the prebuilt zip and redeploys when it changes"
  }
}

run "opens_api_secrets_with_their_kms_key_only" {
  command = apply

  assert {
    condition     = aws_lambda_function.this.environment[0].variables.KMS_KEY_ID == var.api_secrets_kms_key_arn
    error_message = "the handler opens API secrets with the fleet's KEK (KMS_KEY_ID), the key the gateway and spot admin use"
  }

  assert {
    condition = jsonencode([
      for s in data.aws_iam_policy_document.this.statement : {
        actions   = sort(tolist(s.actions))
        condition = [for c in s.condition : "${c.test} ${c.variable} ${join(",", sort(tolist(c.values)))}"]
      } if contains(s.resources, var.api_secrets_kms_key_arn)
      ]) == jsonencode([{
        actions   = ["kms:Decrypt"]
        condition = ["StringEquals kms:EncryptionContext:purpose spot-api-secret"]
    }])
    error_message = "one statement on the API secrets' key: kms:Decrypt (the handler never seals), with the envelope's encryption context"
  }

  assert {
    condition = !anytrue([
      for s in data.aws_iam_policy_document.this.statement : contains(s.resources, var.api_secrets_kms_key_arn)
      if !contains(s.actions, "kms:Decrypt") || length(s.actions) > 1
    ])
    error_message = "no other grant on the API secrets' key"
  }
}

run "decrypts_the_database_secret_only_through_secrets_manager" {
  command = apply

  assert {
    condition = jsonencode([
      for s in data.aws_iam_policy_document.this.statement : {
        actions   = sort(tolist(s.actions))
        condition = sort([for c in s.condition : "${c.test} ${c.variable} ${join(",", sort(tolist(c.values)))}"])
      } if contains(s.resources, var.database_secret_kms_key_arn)
      ]) == jsonencode([{
        actions = ["kms:Decrypt"]
        condition = [
          "StringEquals kms:EncryptionContext:SecretARN ${var.database_secret_arn}",
          "StringEquals kms:ViaService secretsmanager.eu-west-1.amazonaws.com",
        ]
    }])
    error_message = "the rotated Aurora secret's key: kms:Decrypt through Secrets Manager, for that secret only (a rotation is read again, shared/dbsecret.py)"
  }

  assert {
    condition     = aws_lambda_function.this.environment[0].variables.DATABASE_SECRET_ARN == var.database_secret_arn
    error_message = "DATABASE_SECRET_ARN names the secret the settings read again after a rotation (Settings.database_secret_id)"
  }
}
