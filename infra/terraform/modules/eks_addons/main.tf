# The cluster's controllers, the prerequisites of the exchange chart, as Helm releases with pinned chart
# versions: Karpenter, KEDA and the VPA (scaling), the AWS Load Balancer Controller (the Ingresses'
# ALBs, the NLB TargetGroupBinding), External Secrets (the fleet's Secret), kube-prometheus-stack (the
# Prometheus Operator and its CRDs for ServiceMonitor and PrometheusRule, Prometheus, Grafana with the
# dashboard sidecar) and an ADOT collector exporting traces to X-Ray and metrics to CloudWatch. Those
# with AWS calls get a Pod Identity role (iam.tf); Karpenter's and KEDA's are in modules/eks and iam.
# metrics-server is an EKS add-on (modules/eks). Applied from envs/prod-addons, a root of its own,
# because the helm provider is configured from the cluster that envs/prod creates.

resource "helm_release" "karpenter" {
  name             = "karpenter"
  namespace        = "kube-system"
  repository       = "oci://public.ecr.aws/karpenter"
  chart            = "karpenter"
  version          = var.karpenter_version
  create_namespace = false
  wait             = true

  values = [yamlencode({
    settings = {
      clusterName       = var.cluster_name
      interruptionQueue = var.karpenter_interruption_queue
    }
    nodeSelector = { "node-role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    controller = {
      resources = {
        requests = { cpu = "500m", memory = "512Mi" }
        limits   = { memory = "1Gi" }
      }
    }
  })]


}

resource "helm_release" "keda" {
  name             = "keda"
  namespace        = "keda"
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.keda_version
  create_namespace = true
  wait             = true

  values = [yamlencode({
    nodeSelector = { "node-role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    # deploy/keda/triggerauthentication-msk-iam.yaml: provider aws, identityOwner keda.
    podIdentity = { aws = { irsa = { enabled = false } } }
  })]


}

resource "helm_release" "vpa" {
  name             = "vpa"
  namespace        = "kube-system"
  repository       = "https://charts.fairwinds.com/stable"
  chart            = "vpa"
  version          = var.vpa_chart_version
  create_namespace = false
  wait             = true

  values = [yamlencode({
    recommender = {
      nodeSelector = { "node-role" = "system" }
      tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    }
    updater = {
      nodeSelector = { "node-role" = "system" }
      tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    }
    admissionController = {
      nodeSelector = { "node-role" = "system" }
      tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
    }
  })]


}

resource "helm_release" "aws_load_balancer_controller" {
  name             = "aws-load-balancer-controller"
  namespace        = "kube-system"
  repository       = "https://aws.github.io/eks-charts"
  chart            = "aws-load-balancer-controller"
  version          = var.aws_load_balancer_controller_version
  create_namespace = false
  wait             = true

  values = [yamlencode({
    clusterName  = var.cluster_name
    region       = var.region
    vpcId        = var.vpc_id
    replicaCount = 2
    # no WAF or Shield on these load balancers: the controller then needs no permission for them
    enableWaf    = false
    enableWafv2  = false
    enableShield = false
    serviceAccount = {
      create = true
      name   = local.pod_identities["aws-load-balancer-controller"].service_account
    }
    nodeSelector = { "node-role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
  })]

  depends_on = [aws_eks_pod_identity_association.controller]
}

resource "helm_release" "external_secrets" {
  name             = "external-secrets"
  namespace        = local.pod_identities["external-secrets"].namespace
  repository       = "https://charts.external-secrets.io"
  chart            = "external-secrets"
  version          = var.external_secrets_version
  create_namespace = true
  wait             = true

  values = [yamlencode({
    installCRDs = true
    serviceAccount = {
      create = true
      name   = local.pod_identities["external-secrets"].service_account
    }
    nodeSelector = { "node-role" = "system" }
    tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
  })]

  depends_on = [aws_eks_pod_identity_association.controller]
}

# The Prometheus Operator with its CRDs, Prometheus and Grafana. The chart's ServiceMonitors and
# PrometheusRule carry release: kube-prometheus-stack (values-eks.yaml), which this release selects; its
# Grafana sidecar loads every ConfigMap labelled grafana_dashboard: "1" (the chart's dashboard).
resource "helm_release" "kube_prometheus_stack" {
  name             = "kube-prometheus-stack"
  namespace        = "monitoring"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.kube_prometheus_stack_version
  create_namespace = true
  wait             = true

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        retention    = "15d"
        nodeSelector = { "node-role" = "system" }
        tolerations  = [{ key = "CriticalAddonsOnly", operator = "Exists" }]
      }
    }
    grafana = {
      sidecar = {
        dashboards = { enabled = true, label = "grafana_dashboard", labelValue = "1", searchNamespace = "ALL" }
      }
    }
  })]
}

# ADOT (the AWS Distro for OpenTelemetry collector image) in the OpenTelemetry chart, with the project's
# collector configuration (deploy/otel-collector/config.yaml): OTLP/HTTP on adot-collector.observability:4318
# (the chart's config.otelExporterOtlpEndpoint), traces to X-Ray, metrics to CloudWatch (EMF).
resource "helm_release" "adot_collector" {
  name             = "adot-collector"
  namespace        = local.pod_identities["adot-collector"].namespace
  repository       = "https://open-telemetry.github.io/opentelemetry-helm-charts"
  chart            = "opentelemetry-collector"
  version          = var.opentelemetry_collector_chart_version
  create_namespace = true
  wait             = true

  values = [yamlencode({
    fullnameOverride = "adot-collector"
    mode             = "deployment"
    replicaCount     = 2
    image = {
      repository = "public.ecr.aws/aws-observability/aws-otel-collector"
      tag        = var.adot_collector_image_tag
    }
    command = { name = "awscollector" }
    serviceAccount = {
      create = true
      name   = local.pod_identities["adot-collector"].service_account
    }
    # the prometheus receiver discovers the exchange's pods
    clusterRole = {
      create = true
      rules  = [{ apiGroups = [""], resources = ["pods"], verbs = ["get", "list", "watch"] }]
    }
    extraEnvs = [
      { name = "AWS_REGION", value = var.region },
      { name = "K8S_CLUSTER_NAME", value = var.cluster_name },
    ]
    config = yamldecode(var.collector_config)
  })]

  depends_on = [aws_eks_pod_identity_association.controller]
}
