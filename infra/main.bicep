// SCIM 2.0 endpoint for Microsoft Entra provisioning: Azure Functions (Flex Consumption, Python 3.11)
// backed by Azure Table Storage. Everything lands in the target resource group and is locked down by default:
//   - no storage account keys (identity only), no FTP/basic publishing credentials, HTTPS + TLS 1.2 minimum
//   - inbound traffic limited to the Entra service tags (+ optional admin CIDRs); SCM/Kudu denied unless allowed
//   - the SCIM bearer token lives only in Key Vault (RBAC mode) and reaches the app as a Key Vault reference
//
// Deploy:  az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
// Child resources are declared at top level with `parent:` (never nested) so offline parsers read them reliably.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------------------------------

@description('Azure region for every resource. Defaults to the resource group location.')
param location string = resourceGroup().location

@description('Short lowercase name (letters and digits only) used in every resource name, e.g. "scim".')
@minLength(2)
@maxLength(9)
param baseName string = 'scim'

@description('Tags applied to every resource.')
param tags object = {}

// --- SCIM bearer token ---------------------------------------------------------------------------------------------

@secure()
@description('SCIM bearer token(s) stored in Key Vault; several tokens may be comma-separated during a rotation. Empty string = use generatedScimBearerToken. Never put a real value in a committed file.')
param scimBearerToken string

@secure()
@description('Do not set. Random fallback (two newGuid() values, about 244 random bits) used when scimBearerToken is empty; newGuid() is only allowed in a parameter default.')
param generatedScimBearerToken string = '${newGuid()}${newGuid()}'

@description('Write the token into Key Vault on this deployment. Set to false on re-deployments to keep the secret that is already there (otherwise an empty scimBearerToken stores a NEW random token and Entra must be updated).')
param writeScimBearerTokenSecret bool = true

@description('Name of the Key Vault secret holding the SCIM bearer token(s).')
param scimTokenSecretName string = 'scim-bearer-tokens'

// --- OAuth 2.0 token endpoint (client credentials, Workload Identity Federation) ------------------------------------

@secure()
@description('Do not set. Signing key of the access tokens /oauth2/token issues (three newGuid() values, about 366 random bits, 108 characters), stored in Key Vault; newGuid() is only allowed in a parameter default.')
param generatedTokenSigningKey string = '${newGuid()}${newGuid()}${newGuid()}'

@description('Write a new signing key into Key Vault on this deployment. Set to false on re-deployments to keep the key(s) already there (a new key invalidates access tokens Entra holds; Entra simply requests new ones).')
param writeTokenSigningKeySecret bool = true

@description('Name of the Key Vault secret holding the token signing key(s) (SCIM_TOKEN_SIGNING_KEYS; comma-separated during a rotation, the first signs).')
param tokenSigningKeySecretName string = 'scim-token-signing-keys'

@description('Lifetime of the access tokens /oauth2/token issues, in minutes (SCIM_ACCESS_TOKEN_MINUTES; Microsoft gallery rule: 60 to 360).')
@minValue(60)
@maxValue(360)
param accessTokenMinutes int = 60

// --- App settings read by the SCIM app -----------------------------------------------------------------------------

@description('Prefix of the Azure Table names the app creates on first use (SCIM_TABLE_PREFIX): a letter, then up to 39 letters or digits.')
@minLength(1)
@maxLength(40)
param scimTablePrefix string = 'scim'

@description('Comma-separated Entra tenant ids accepted for the optional Entra-issued JWT auth mode (SCIM_ENTRA_TENANT_IDS). Empty = disabled.')
param scimEntraTenantIds string = ''

@description('Turns the change feed on (SCIM_CHANGE_FEED): every change becomes an event, read at /scim/v2/Changes and sent to the queue below.')
param scimChangeFeed bool = false

@description('The change feed\'s Azure Storage Queue (SCIM_CHANGE_FEED_QUEUE), created in the storage account; the app may only send to it. 3 to 63 lower-case letters, digits and single hyphens.')
@minLength(3)
@maxLength(63)
param scimChangeFeedQueue string = 'scim-changes'

// --- Flex Consumption scale ----------------------------------------------------------------------------------------

@description('Always-ready instances for the HTTP trigger group (0 = scale to zero; 1 removes cold starts at a fixed cost).')
@minValue(0)
@maxValue(20)
param alwaysReadyInstanceCount int = 0

@description('Memory per instance in MB (Flex Consumption sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Maximum number of instances the app may scale out to. Flex Consumption accepts 40 to 1000.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Concurrent HTTP requests per instance. The Flex default for Python is 1, far too low for this async I/O-bound app.')
@minValue(1)
@maxValue(1000)
param perInstanceConcurrency int = 16

// --- Network / TLS -------------------------------------------------------------------------------------------------

@description('Extra CIDRs (e.g. "203.0.113.7/32") allowed to call the SCIM endpoint, e.g. admins testing with curl. The Entra service tags are always allowed.')
param allowedCidrs array = []

@description('CIDRs allowed on the SCM/Kudu endpoint (code deployment with func/az). Empty = SCM closed to everyone.')
param scmAllowedCidrs array = []

@description('TEST DEPLOYMENTS ONLY: true sets the main site default action to Allow (anyone on the internet can reach the endpoint; the bearer token still applies). Never enable in production.')
param allowPublicAccessForTesting bool = false

@description('Minimum TLS cipher suite. Off by default: App Service documents the setting for dedicated (Basic and higher) multi-tenant plans, and Flex Consumption (FC1) is not one, so a value may be refused or ignored. If your plan accepts it, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 keeps Entra\'s RSA GCM suites (plus TLS 1.3) and drops CBC and non-ECDHE suites.')
@allowed([
  ''
  'TLS_AES_256_GCM_SHA384'
  'TLS_AES_128_GCM_SHA256'
  'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'
  'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'
])
param minTlsCipherSuite string = ''

// --- Storage / monitoring / Key Vault ------------------------------------------------------------------------------

@description('Storage account SKU.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_LRS'

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Key Vault soft-delete retention in days (purge protection is always on, so a deleted vault name stays reserved this long).')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionInDays int = 90

// ---------------------------------------------------------------------------------------------------------------------
// Names (deterministic per resource group + baseName, so re-deployments update in place)
// ---------------------------------------------------------------------------------------------------------------------

var base = toLower(baseName)
var suffix = toLower(uniqueString(subscription().id, resourceGroup().id, base))
var functionAppName = 'func-${base}-${suffix}'
var planName = 'plan-${base}-${suffix}'
var storageAccountName = take('st${base}${suffix}', 24)
var keyVaultName = take('kv-${base}-${suffix}', 24)
var logAnalyticsName = 'log-${base}-${suffix}'
var appInsightsName = 'appi-${base}-${suffix}'
var deploymentContainerName = 'app-package'

// ---------------------------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------------------------

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    logAnalyticsName: logAnalyticsName
    appInsightsName: appInsightsName
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    storageAccountName: storageAccountName
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    changeFeedQueueName: scimChangeFeedQueue
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    keyVaultName: keyVaultName
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    secretName: scimTokenSecretName
    secretValue: empty(scimBearerToken) ? generatedScimBearerToken : scimBearerToken
    writeSecret: writeScimBearerTokenSecret
    signingKeySecretName: tokenSigningKeySecretName
    signingKeyValue: generatedTokenSigningKey
    writeSigningKeySecret: writeTokenSigningKeySecret
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    functionAppName: functionAppName
    planName: planName
    deploymentStorageUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    alwaysReadyInstanceCount: alwaysReadyInstanceCount
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    perInstanceConcurrency: perInstanceConcurrency
    allowedCidrs: allowedCidrs
    scmAllowedCidrs: scmAllowedCidrs
    allowPublicAccessForTesting: allowPublicAccessForTesting
    minTlsCipherSuite: minTlsCipherSuite
  }
}

module roleAssignments 'modules/roleassignments.bicep' = {
  name: 'roleassignments'
  params: {
    principalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    changeFeedQueueName: storage.outputs.changeFeedQueueName
  }
}

// App settings are applied last, after the identity holds its roles, so the Key Vault reference and the
// identity-based host storage connection resolve on the first start.
module appSettings 'modules/appsettings.bicep' = {
  name: 'appsettings'
  dependsOn: [
    roleAssignments
  ]
  params: {
    functionAppName: functionApp.outputs.name
    storageAccountName: storage.outputs.name
    tableEndpoint: storage.outputs.tableEndpoint
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    scimTokenSecretName: scimTokenSecretName
    tokenSigningKeySecretName: tokenSigningKeySecretName
    accessTokenMinutes: accessTokenMinutes
    scimTablePrefix: scimTablePrefix
    scimEntraTenantIds: scimEntraTenantIds
    queueEndpoint: storage.outputs.queueEndpoint
    scimChangeFeed: scimChangeFeed
    changeFeedQueueName: storage.outputs.changeFeedQueueName
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Outputs (names and the public URL only; never a secret)
// ---------------------------------------------------------------------------------------------------------------------

@description('Paste this into Entra: Enterprise app > Provisioning > Admin credentials > Tenant URL.')
output tenantUrl string = 'https://${functionApp.outputs.defaultHostName}/scim/v2'
@description('OAuth 2.0 client credentials / Workload Identity Federation: Entra\'s "OAuth token endpoint" / "Token Endpoint".')
output tokenEndpoint string = 'https://${functionApp.outputs.defaultHostName}/oauth2/token'
output functionAppName string = functionApp.outputs.name
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
output scimTokenSecretName string = scimTokenSecretName
output tokenSigningKeySecretName string = tokenSigningKeySecretName
output appInsightsName string = monitoring.outputs.appInsightsName
output logAnalyticsWorkspaceName string = monitoring.outputs.logAnalyticsName
