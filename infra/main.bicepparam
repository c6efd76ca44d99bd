// Default parameters for infra/main.bicep:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.bicepparam
// Override any value on the command line, e.g. -p allowedCidrs='["203.0.113.7/32"]'.
// Keep secrets out of this file: the bearer token comes from the environment (or -p scimBearerToken=...).
using './main.bicep'

param baseName = 'scim'

// SCIM bearer token: read from $SCIM_BEARER_TOKEN when set; empty = a random token generated at deploy time.
// Assigned here (not left to the template) so a command-line override -p scimBearerToken=... is honoured.
param scimBearerToken = readEnvironmentVariable('SCIM_BEARER_TOKEN', '')

// Re-deployments: pass -p writeScimBearerTokenSecret=false to keep the token already stored in Key Vault.
param writeScimBearerTokenSecret = true

// Token endpoint: re-deployments pass -p writeTokenSigningKeySecret=false to keep the signing key(s) in Key Vault.
param writeTokenSigningKeySecret = true
param accessTokenMinutes = 60

param scimTablePrefix = 'scim'
param scimEntraTenantIds = ''

// The change feed (README "Change feed"): off by default; its events go to this queue of the storage account.
param scimChangeFeed = false
param scimChangeFeedQueue = 'scim-changes'

// Flex Consumption scale
param alwaysReadyInstanceCount = 0
param instanceMemoryMB = 2048
param maximumInstanceCount = 40
param perInstanceConcurrency = 16

// Network: Entra service tags are always allowed; these lists add admin / deployment-agent CIDRs.
param allowedCidrs = []
param scmAllowedCidrs = []
param allowPublicAccessForTesting = false
param minTlsCipherSuite = ''

param storageSku = 'Standard_LRS'
param logRetentionInDays = 30
param keyVaultSoftDeleteRetentionInDays = 90
